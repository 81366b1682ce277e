// Command gen writes the crash harness's fixed input: N JSON lines over K keys.
// With -ts each line also carries "ts": its line number, an event time in
// unix milliseconds (1,000 records per second of event time).
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
)

func main() {
	n := flag.Int("n", 200000, "records")
	k := flag.Int("keys", 1000, "keys")
	ts := flag.Bool("ts", false, "add the event time field ts")
	flag.Parse()
	w := bufio.NewWriter(os.Stdout)
	for i := 0; i < *n; i++ {
		if *ts {
			fmt.Fprintf(w, `{"sensor":"s%04d","v":%d,"ts":%d}`+"\n", (i*7919)%*k, i%97, i)
		} else {
			fmt.Fprintf(w, `{"sensor":"s%04d","v":%d}`+"\n", (i*7919)%*k, i%97)
		}
	}
	w.Flush()
}
