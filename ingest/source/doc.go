// Package source is how input that edged does not read by itself enters a
// gateway: a Source reads from anything (a serial port, a vendor SDK, a
// socket, a file) and hands payloads to a Writer, which appends them to the
// node's durable input log. Every pipeline whose source names it reads them
// from there, with the same exactly-once guarantees as MQTT messages.
//
// The package imports only the standard library, so a program that embeds
// edged with a source of its own links nothing more for it.
//
// # Writing a source
//
//	type meter struct{ port io.Reader }
//
//	func (m meter) Run(ctx context.Context, w source.Writer) error {
//		sc := bufio.NewScanner(m.port)
//		for sc.Scan() {
//			if err := w.Write(ctx, [][]byte{sc.Bytes()}, nil); err != nil {
//				return err // the node restarts the source after a backoff
//			}
//		}
//		return sc.Err()
//	}
//
// The node runs it under a name (node.WithSource("meter", meter{...})), and a
// pipeline reads it with `custom: meter` in one of its sources; the payloads
// are decoded by that source's format, as MQTT payloads are. The program in
// examples/customsource is a complete one.
//
// # Acknowledgement
//
// Write returns nil only once its payloads are committed to the input log
// (fsynced, in a group commit shared with other writers): a source may then
// acknowledge them upstream (answer a device, delete a file, advance an
// offset elsewhere). It returns an error when nothing of the call was
// committed, or when the node cannot tell (it stopped during the commit):
// then acknowledge nothing and write again later; Writer.Position says
// which way the call went.
//
// # Positions
//
// A source that can resume where it stopped (a file offset, a sequence
// number) passes its position with each Write. The position commits in the
// same transaction as the payloads, so after any crash Writer.Position and
// the input log agree: resuming from Position neither loses nor repeats a
// payload. Tail, the file source, keeps its offset this way.
//
// # Reserved topics
//
// Payloads are logged under topics beginning with TopicPrefix, which MQTT
// clients cannot publish to and pipelines cannot subscribe to.
package source
