// Command waitfor is the MQTT benchmark's probe: it polls a Prometheus text
// endpoint in-process (no curl per poll, which would cost the machine more
// CPU than the process being measured) until a metric reaches a value, and
// prints the unix time, in seconds, when it first saw it.
//
//	waitfor --url http://127.0.0.1:8080/metrics --metric edged_mqtt_handed_off_total --value 1000000
package main

import (
	"bufio"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

func main() {
	url := flag.String("url", "", "metrics URL")
	metric := flag.String("metric", "", "metric name (a sample without labels)")
	value := flag.Float64("value", 0, "value to wait for (>=)")
	every := flag.Duration("every", 50*time.Millisecond, "poll interval")
	timeout := flag.Duration("timeout", 15*time.Minute, "give up after this long")
	flag.Parse()
	deadline := time.Now().Add(*timeout)
	last := 0.0
	for time.Now().Before(deadline) {
		v, err := sample(*url, *metric)
		if err == nil {
			last = v
			if v >= *value {
				fmt.Printf("%.3f\n", float64(time.Now().UnixNano())/1e9)
				return
			}
		}
		time.Sleep(*every)
	}
	fmt.Fprintf(os.Stderr, "waitfor: %s reached %v of %v within %v\n", *metric, last, *value, *timeout)
	os.Exit(1)
}

func sample(url, metric string) (float64, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), metric+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, fmt.Errorf("%s not found", metric)
}
