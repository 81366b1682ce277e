//go:build integration

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// passPipeline writes every reading to a file as it is: the output lists
// exactly the messages the input log holds.
const passPipeline = `apiVersion: edged/v1
kind: Pipeline
metadata: {name: pass}
spec:
  interval: 1s
  sources:
    - name: readings
      mqtt: {topics: ["dev/+"], qos: 1}
      fields:
        - {name: seq, type: number}
        - {name: dev, type: string}
  sinks:
    - {name: out, input: readings, type: file, path: pass.jsonl}
`

// TestIntegrationEmbeddedBrokerAckedSurvivesKill publishes QoS 1 messages
// from several clients to a real edged's embedded broker, SIGKILLs edged
// right after the last PUBACK, restarts it, and checks that every
// acknowledged message comes out once: the broker acknowledges a message
// only after it is in the durable input log.
func TestIntegrationEmbeddedBrokerAckedSurvivesKill(t *testing.T) {
	bin := buildEdged(t)
	listen := freeAddr(t)
	dir := t.TempDir()
	e := &edgedProc{bin: bin, cfg: filepath.Join(dir, "edged.yaml"), data: filepath.Join(dir, "data"),
		pipes: filepath.Join(dir, "pipelines")}
	os.MkdirAll(e.pipes, 0o755)
	if err := os.WriteFile(filepath.Join(e.pipes, "pass.yaml"), []byte(passPipeline), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf("storage: {sync: always}\nmqtt:\n  listen: %q\n", listen)
	if err := os.WriteFile(e.cfg, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	e.start(t)

	const clients, per = 8, 2500
	url := "tcp://" + listen
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- publishDev(url, c, per)
		}()
	}
	wg.Wait()
	e.kill(t) // right after the last PUBACK
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}

	e.start(t)
	const n = clients * per
	out := filepath.Join(e.data, "out", "pass.jsonl")
	var seen map[string]int
	eventually(t, 60*time.Second, func() error {
		lines, err := fileLines(out)
		if err != nil && !os.IsNotExist(err) {
			return err
		}
		seen = map[string]int{}
		for _, l := range lines {
			seen[fmt.Sprintf("%v/%v", l["dev"], l["seq"])]++
		}
		if len(seen) < n {
			return fmt.Errorf("%d of %d acknowledged messages in the output", len(seen), n)
		}
		return nil
	})
	for k, c := range seen {
		if c != 1 {
			t.Errorf("message %s written %d times; want once", k, c)
		}
	}
	e.term(t)
}

// publishDev publishes n QoS 1 readings as device c, up to 500 in flight,
// and returns once every one is acknowledged.
func publishDev(url string, c, n int) error {
	cl := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID(fmt.Sprintf("dev-%d", c)).
		SetCleanSession(true).SetAutoReconnect(false))
	if tok := cl.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		return fmt.Errorf("device %d connect: %v", c, tok.Error())
	}
	toks := make([]paho.Token, 0, 500)
	flush := func() error {
		for _, tok := range toks {
			if !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
				return fmt.Errorf("device %d: publish not acknowledged: %v", c, tok.Error())
			}
		}
		toks = toks[:0]
		return nil
	}
	for i := range n {
		payload := fmt.Sprintf(`{"seq":%d,"dev":"d%d"}`, i, c)
		toks = append(toks, cl.Publish(fmt.Sprintf("dev/d%d", c), 1, false, payload))
		if len(toks) == cap(toks) {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}
