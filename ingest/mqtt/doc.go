// Package mqtt is edged's MQTT ingest: a Source that subscribes to one or
// more brokers and hands messages in batches to a Handler (the daemon's
// durable input log), and an embedded broker for gateways with no broker of
// their own whose QoS 1 acknowledgements wait for the same Handler. Topic
// templates live in internal/topic and every payload decoder in
// engine/decode.
//
// # The client
//
// For tcp:// (mqtt://) and ssl:// (tls://, mqtts://) brokers the Source
// speaks MQTT 3.1.1 itself (client.go, packet.go): CONNECT with the client
// id, clean or persistent session, username and password and keepalive;
// TLS and mutual TLS from Config.TLS; one SUBSCRIBE of every filter
// (shared "$share/..." filters included) at QoS 0 or 1; PINGREQ after a
// keepalive without a write, and a connection with no byte read for 1.5
// keepalives is dead. Its reader parses every PUBLISH of a read (up to 64
// KiB) and queues them in one step, with no goroutine and no allocation
// per message: topics and payloads are sliced from the read buffer, which
// is never written again once it holds one (the Handler may keep them).
// After the Handler accepted a batch, all its PUBACKs go out in one write.
// A packet larger than Config.MaxPacketSize, or one that is
// not MQTT 3.1.1, ends the connection with an error saying so; the buffer
// grows only with the bytes that arrive, never by a length a header claims.
//
// ws:// and wss:// brokers, and every broker when a proxy is set in the
// environment (all_proxy), go through paho.mqtt.golang instead: the same
// queue, batches and contract, at paho's cost (a callback, a goroutine
// switch and a PUBACK write per message). paho also serves edged's mqtt
// sinks, publisher and simulator.
//
// The package is a leaf: it imports the standard library, paho, mochi-mqtt
// and engine's types, never storage, pipeline or node. The daemon wires a
// Source to the log through the Handler interface.
//
// # The acknowledgement contract
//
// Subscriptions at QoS 1 use a persistent session (Config.CleanSession
// false, a stable Config.ClientID) and manual acknowledgement (with paho,
// SetAutoAckDisabled). The Source acknowledges (PUBACK) a QoS 1 message only
// after Handler.HandleBatch returned nil for the batch holding it, and the
// Handler must have made the batch durable by then. So a crash between
// receipt and commit brings a redelivery, never a loss. A Handler error
// acknowledges nothing: the Source retries the same batch with backoff
// until it is accepted. The Source itself never drops a message.
//
// Acknowledgements go out on the connection the message arrived on, in
// the order the messages arrived (MQTT requires it). When that connection
// is gone before the Handler accepted the batch, the acknowledgements are
// dropped with it and the broker redelivers the messages on the next
// connection (flagged DUP).
//
// # Back-pressure
//
// Between the connection and the Handler sits one bounded queue of
// Config.MaxInFlight messages (counting the batch being handed off). Its
// overflow policy is to block, never to drop: when it is full, the reader
// (or paho's callback, on paho's one router goroutine: OrderMatters true)
// waits for room (Status.Waiting is then 1) and stops reading the
// connection, so TCP pushes back to the broker, which keeps the rest:
// memory stays bounded by MaxInFlight messages plus one read buffer, at
// QoS 0 too. For QoS 1 the broker also sends no more than its in-flight
// window of unacknowledged messages (mosquitto's max_inflight_messages, 20
// by default). The own client keeps pinging while it waits, so a long
// block does not end the connection; paho does not see the broker's
// PINGRESP while it is not reading, so under paho a block longer than the
// keep-alive plus paho's ping timeout drops the connection, the Source
// reconnects, and the QoS 1 messages it held come back flagged DUP (the
// input log drops the copies).
//
// A Handler error that wraps ErrBackPressure (the log reached its disk
// quota) makes the Source wait Config.RetryBackoffMax between attempts and
// report Status.BackPressured; any other error is retried with exponential
// backoff from Config.RetryBackoffMin. Both are visible in Status.LastError.
//
// # QoS semantics
//
//   - QoS 0 is at most once, by the protocol: a message in flight, queued in
//     the Source, or published while the Source is disconnected can be lost,
//     and nothing in edged can recover it.
//   - QoS 1 is at least once up to the input log: a message is acknowledged
//     only once durable, and the broker redelivers the rest.
//   - QoS 2 is refused by Config.Validate: the log's dedup gives its effect
//     at less cost.
//
// # Duplicates
//
// At least once means duplicates. The broker redelivers, with the DUP flag,
// every QoS 1 message it sent without receiving our acknowledgement:
// messages in flight when a connection dropped, when edged crashed after
// the log commit but before the PUBACK left, or when the Handler was slow.
// Message.Duplicate surfaces the flag and Status.Redelivered counts them,
// but the Source does not drop anything: a DUP copy may be the first the
// log sees (the first delivery may not have been committed), and a message
// without the flag may still be a copy (a publisher's own retry). MQTT
// 3.1.1 carries no end-to-end message id, so the input log drops copies
// (by topic and payload hash within a bounded horizon, or a configured key
// such as sensor id plus sequence number). Exactly-once holds from the log
// onward, and at the MQTT boundary as far as that dedup key identifies a
// message.
//
// # Broker settings users must set
//
// mosquitto drops QoS 1 messages for an offline persistent client past
// max_queued_messages, 1000 by default, silently. Measured here with
// mosquitto 2.0.11: of 3,000 messages published while edged was stopped,
// 1,000 arrived with the default and all 3,000 with the setting below
// (TestIntegrationOfflineQueueLimit). An edged restart or crash under load
// loses data unless the broker is configured for it:
//
//	max_queued_messages 0      # or a count that covers the longest outage
//	persistence true           # if the broker itself may restart
//	persistence_location /var/lib/mosquitto/
//
// Other brokers have equivalent limits (EMQX max_mqueue_len, HiveMQ
// max-queued-messages); set them likewise.
//
// # Failover and reconnection
//
// Config.Brokers is tried in order. After a lost connection the Source
// first retries the same broker (the persistent session and its queued
// messages live there); each failed attempt moves on to the next broker.
// Waits grow exponentially from ReconnectBackoffMin to ReconnectBackoffMax,
// each drawn from [d/2, d] (jitter) so that a fleet does not reconnect in
// step. Subscriptions are renewed on every connect. An unreachable broker
// is never an error from Run; it shows in Status.
//
// # The embedded broker
//
// Broker runs mochi-mqtt/server, a pure-Go MQTT 3.1.1/5 broker, so that a
// gateway with no broker configured still accepts sensor data, with no
// cgo, no second process and no extra package to install on the device.
//
// Its defaults: it listens on ":1883", every interface, with no
// authentication and no TLS. Anyone on the LAN can then publish readings
// to the gateway and subscribe to every topic on it. Set
// BrokerConfig.Username/Password, BrokerConfig.TLS, or an address such as
// "127.0.0.1:1883" to restrict it. BrokerLimits bound packet size, clients,
// session expiry, queued messages per subscriber (up to 65,535, the most a
// 16-bit packet id allows, by default) and in-flight messages per
// publisher; each is counted when hit (Broker.Stats). Sessions live in
// memory: the embedded broker's queue does not survive a restart of edged,
// which matters little because edged is then down too and publishers hold
// their own unacknowledged QoS 1 messages.
//
// # Durable acknowledgement
//
// With BrokerConfig.Handler set, the broker is a write-ahead hand-off
// rather than a relay. A hook sees every PUBLISH from a network client
// before mochi would acknowledge it:
//
//   - QoS 1 (and 2) messages are queued for one batcher goroutine and
//     rejected for mochi, which therefore neither acknowledges nor delivers
//     them. The batcher hands the messages of all clients to the Handler in
//     batches (one group commit for many clients); once it returns nil, it
//     queues each message's PUBACK (PUBREC) to its client's own writer
//     goroutine (which writes all those queued in one system call) and
//     delivers the message to the broker's subscribers. A client that does
//     not read its connection thus blocks only its own acknowledgements;
//     mochi's keepalive deadline ends such a connection (a client with
//     keepalive 0 keeps its goroutines until TCP gives up).
//   - A client has at most MaxInFlightPerClient messages waiting; at the
//     limit the hook waits, so the broker stops reading that client's
//     connection (TCP back-pressure) until acknowledgements free room.
//   - All clients together have at most MaxInFlight messages waiting: a
//     client that sends one more is not read further until the Handler
//     accepted (or refused) a batch, so the memory of waiting messages does
//     not grow with the number of clients.
//   - When the Handler returns an error, nothing of the batch is
//     acknowledged: every client with a QoS 1 message in it is
//     disconnected, so that it resends after reconnecting, and its QoS 0
//     messages are lost. Both are counted (HandoffStats).
//   - QoS 0 messages are queued for the Handler without waiting for it and
//     delivered to subscribers at once: at most once, as QoS 0 promises.
//
// Messages still queued when the broker stops are not acknowledged.
// Redelivered copies reach the Handler again; dropping them is its job
// (edged's input log does so by topic and payload hash).
//
// # Topic templates (internal/topic)
//
// topic.ParseTemplate("sensors/{site}/{sensor}/temp") gives the subscription
// filter "sensors/+/+/temp" and a Match that passes site and sensor to a
// callback as substrings of the topic, allocating nothing; "{rest...}" as
// the last level captures the remainder ('#').
package mqtt
