package bus

import "strings"

// TopicPrefix starts every topic of a bus reading. MQTT messages never
// carry it: an MQTT topic starting with '$' is reserved to the broker (MQTT
// 3.1.1 section 4.7.2), wildcard subscriptions do not match it, and the node
// drops MQTT messages under it (see Reserved).
const TopicPrefix = "$bus/"

// Topic returns the topic under which the readings of a pipeline's source
// are ingested: "$bus/<pipeline>/<source>".
func Topic(pipeline, source string) string { return TopicPrefix + pipeline + "/" + source }

// Reserved reports whether topic is in the bus readings' topic space, which
// no MQTT client may publish into or subscribe to.
func Reserved(topic string) bool {
	return strings.HasPrefix(topic, TopicPrefix) || topic == strings.TrimSuffix(TopicPrefix, "/")
}
