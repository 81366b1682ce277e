package node

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/edgedio/edged/ingest/bus"
	"github.com/edgedio/edged/internal/topic"
	"github.com/edgedio/edged/pipeline"
)

// This file wires local-bus sensors (package ingest/bus) into the node. A
// pipeline source with a `bus:` block is read by a bus.Poller, one per
// pipeline; each reading is handed to Ingest under the topic
// bus.Topic(pipeline, source), which the source's template matches, so it
// lands in the same durable input log as MQTT messages. The hooks elsewhere:
//
//   - Node.bus (node.go) holds this state;
//   - newPipe (pipe.go) adds busTemplate to a bus source's topic templates;
//   - Node.start (node.go) calls startBus once the pipe runs, Node.remove
//     calls stopBus, Node.Run calls startAllBus once ready and stopAllBus
//     when it drains (before the pipelines stop);
//   - handleMQTT (mqtt.go) drops MQTT messages under bus.TopicPrefix
//     (mqttReserved), so no MQTT client can inject readings;
//   - Status and WriteMetrics (metrics.go) call busStatus and
//     writeBusMetrics.

// WithBusHost sets the Host local-bus sensors are opened on (default:
// bus.DefaultHost, the machine's own buses).
func WithBusHost(h bus.Host) Option { return func(n *Node) { n.bus.host = h } }

// busState is the node's local-bus side.
type busState struct {
	host bus.Host // nil until the first sensor starts, unless set

	mu      sync.Mutex
	pollers map[string]*busPoller // by pipeline

	mqttRejected atomic.Uint64 // MQTT messages under the reserved topics
}

type busPoller struct {
	p      *bus.Poller
	cancel context.CancelFunc
	done   chan struct{}
}

// busTemplate returns the topic template that routes a bus source's
// readings to it, or nil when src has no bus block. It has no wildcard, so
// it matches exactly that source's topic.
func busTemplate(pipelineName string, src *pipeline.Source) *topic.Template {
	if src.Bus == nil {
		return nil
	}
	t, err := topic.ParseTemplate(bus.Topic(pipelineName, src.Name))
	if err != nil {
		// Pipeline and source names are validated: letters, digits, . _ -.
		panic(fmt.Sprintf("BUG: bus topic of %s/%s: %v", pipelineName, src.Name, err))
	}
	return t
}

// mqttReserved reports (and counts) an MQTT message under the topics of bus
// readings; handleMQTT drops it.
func (n *Node) mqttReserved(topic string) bool {
	if bus.Reserved(topic) {
		n.bus.mqttRejected.Add(1)
		return true
	}
	return false
}

// startBus starts (or restarts, after an apply) the sensors of p. Before the
// node is ready it does nothing: Run calls startAllBus then.
func (n *Node) startBus(p *pipe) {
	if !n.ready.Load() {
		return
	}
	n.stopBus(p.name)
	var sensors []bus.Sensor
	for _, src := range p.spec.Spec.Sources {
		if src.Bus != nil {
			sensors = append(sensors, bus.Sensor{Pipeline: p.name, Source: src.Name, Config: *src.Bus})
		}
	}
	if len(sensors) == 0 {
		return
	}
	n.bus.mu.Lock()
	defer n.bus.mu.Unlock()
	if n.bus.host == nil {
		n.bus.host = bus.DefaultHost()
	}
	for i := range sensors {
		if err := bus.CheckHost(n.bus.host, &sensors[i].Config); err != nil {
			n.log.Error("bus sensor: its bus is missing; it is retried until it appears",
				"pipeline", p.name, "source", sensors[i].Source, "err", err)
		}
	}
	log := n.log.With("component", "bus")
	h := bus.HandlerFunc(func(ctx context.Context, topic string, payload []byte) error {
		return n.Ingest(ctx, []Message{{Topic: topic, Payload: payload}})
	})
	bp := &busPoller{p: bus.NewPoller(n.bus.host, sensors, h, bus.Options{Logger: log,
		StateDir: filepath.Join(n.cfg.DataDir, "bus")}), done: make(chan struct{})}
	var ctx context.Context
	ctx, bp.cancel = context.WithCancel(n.runCtx)
	go func() {
		defer close(bp.done)
		bp.p.Run(ctx)
	}()
	if n.bus.pollers == nil {
		n.bus.pollers = map[string]*busPoller{}
	}
	n.bus.pollers[p.name] = bp
	n.log.Info("bus sensors started", "pipeline", p.name, "sensors", len(sensors))
}

// stopBus stops the sensors of a pipeline and waits for them.
func (n *Node) stopBus(name string) {
	n.bus.mu.Lock()
	bp := n.bus.pollers[name]
	delete(n.bus.pollers, name)
	n.bus.mu.Unlock()
	if bp != nil {
		bp.cancel()
		<-bp.done
	}
}

// startAllBus starts the sensors of every pipeline (Run, once ready). It
// holds swapMu, as pipeline changes do, so that an apply racing with it
// cannot leave a poller running unrecorded.
func (n *Node) startAllBus() {
	n.swapMu.Lock()
	defer n.swapMu.Unlock()
	for _, p := range n.sortedPipes() {
		n.startBus(p)
	}
}

// stopAllBus stops every sensor (Run, when it drains).
func (n *Node) stopAllBus() {
	n.bus.mu.Lock()
	names := make([]string, 0, len(n.bus.pollers))
	for name := range n.bus.pollers {
		names = append(names, name)
	}
	n.bus.mu.Unlock()
	for _, name := range names {
		n.stopBus(name)
	}
}

// BusStatus returns the state of every local-bus sensor, by pipeline and
// source.
func (n *Node) BusStatus() []bus.SensorStatus {
	n.bus.mu.Lock()
	var out []bus.SensorStatus
	for _, bp := range n.bus.pollers {
		out = append(out, bp.p.Status()...)
	}
	n.bus.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Pipeline != out[j].Pipeline {
			return out[i].Pipeline < out[j].Pipeline
		}
		return out[i].Source < out[j].Source
	})
	return out
}

// busStatus adds the sensors and their conditions to st.
func (n *Node) busStatus(st *Status) {
	st.Bus = n.BusStatus()
	for _, s := range st.Bus {
		if s.State == "failing" {
			st.Conditions = append(st.Conditions, fmt.Sprintf("bus sensor %s/%s (%s, %s): failing, retried in %s: %s",
				s.Pipeline, s.Source, s.Device, s.Where, s.RetryIn, s.LastError))
		}
	}
}

// writeBusMetrics writes the edged_bus_* metrics.
func (n *Node) writeBusMetrics(g, c func(name, help string, v float64, labels ...string)) {
	for _, s := range n.BusStatus() {
		l := []string{"pipeline", s.Pipeline, "source", s.Source, "device", s.Device}
		g("edged_bus_sensor_up", "1 while a bus sensor reads, 0 while it fails (retried with backoff).", b2f(s.State == "ok"), l...)
		c("edged_bus_reads_total", "Readings taken from a bus sensor.", float64(s.Reads), l...)
		c("edged_bus_errors_total", "Failed opens and reads of a bus sensor (missing device, NACK, CRC error).", float64(s.Errors), l...)
		c("edged_bus_dropped_total", "Bus readings Ingest refused (not ready, disk quota).", float64(s.Dropped), l...)
		if !s.LastRead.IsZero() {
			g("edged_bus_last_read_timestamp_seconds", "Unix time of a bus sensor's last reading.", float64(s.LastRead.UnixMilli())/1000, l...)
		}
	}
	c("edged_bus_mqtt_rejected_total", "MQTT messages dropped for using the topics reserved to bus readings ($bus/).", float64(n.bus.mqttRejected.Load()))
}
