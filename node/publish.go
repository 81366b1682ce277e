package node

import (
	"time"

	"github.com/edgedio/edged/ingest/mqtt"
)

// publisherConfig is what the mqtt sinks' client connects with: the node's
// brokers (or its own embedded broker, whose certificate is for the LAN
// name, so verification is off for it alone).
func (n *Node) publisherConfig() mqtt.PublisherConfig {
	mc := n.cfg.MQTT
	c := mqtt.PublisherConfig{Brokers: n.mq.brokers, ClientID: n.cfg.clientID() + "-pub",
		Username: mc.Username, Password: mc.Password, TLS: mc.TLS, KeepAlive: max(mc.KeepAlive, 30*time.Second)}
	c.TLS.InsecureSkipVerify = c.TLS.InsecureSkipVerify || n.mq.tlsInsec
	return c
}
