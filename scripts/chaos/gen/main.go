// Command gen writes the crash harness's fixed input: N JSON lines over K keys.
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
	flag.Parse()
	w := bufio.NewWriter(os.Stdout)
	for i := 0; i < *n; i++ {
		fmt.Fprintf(w, `{"sensor":"s%04d","v":%d}`+"\n", (i*7919)%*k, i%97)
	}
	w.Flush()
}
