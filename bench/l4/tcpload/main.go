// Command tcpload is both ends of bench/l4/run.sh: the backend that sinks
// what it is sent, and the client that sends it.
//
//	tcpload sink -listen 127.0.0.1:19200
//	tcpload send -addr 127.0.0.1:19211 -conns 50 -bytes 2GiB
//
// sink reads each connection to EOF, answers the byte count it read (8
// bytes, big endian) and closes. send opens conns connections at once, sends
// bytes/conns on each from a random buffer, closes its side, checks each
// count, and prints the bytes sent, the seconds from the first connect to
// the last count, and their ratio in bytes per second:
//
//	bytes=2147483648 seconds=0.812 bytes_per_sec=2645000000
//
// Only the count is answered, so the figure is of one direction, client to
// backend, the direction a proxy splices the same way as the other.
package main

import (
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		log.Fatal("usage: tcpload sink|send [flags]")
	}
	switch os.Args[1] {
	case "sink":
		fs := flag.NewFlagSet("sink", flag.ExitOnError)
		listen := fs.String("listen", "127.0.0.1:19200", "address to listen on")
		fs.Parse(os.Args[2:])
		sink(*listen)
	case "send":
		fs := flag.NewFlagSet("send", flag.ExitOnError)
		addr := fs.String("addr", "127.0.0.1:19211", "address to send to")
		conns := fs.Int("conns", 1, "connections at once")
		size := fs.String("bytes", "1GiB", "bytes in all (suffixes KiB, MiB, GiB)")
		fs.Parse(os.Args[2:])
		n, err := parseSize(*size)
		if err != nil {
			log.Fatal(err)
		}
		if err := send(*addr, *conns, n); err != nil {
			log.Fatal(err)
		}
	default:
		log.Fatalf("unknown mode %q", os.Args[1])
	}
}

func parseSize(s string) (int64, error) {
	mult := int64(1)
	for suffix, m := range map[string]int64{"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30} {
		if strings.HasSuffix(s, suffix) {
			s, mult = strings.TrimSuffix(s, suffix), m
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return n * mult, nil
}

func sink(listen string) {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		log.Fatal(err)
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			log.Fatal(err)
		}
		go func() {
			defer c.Close()
			buf := make([]byte, 256<<10)
			var n int64
			for {
				m, err := c.Read(buf)
				n += int64(m)
				if err == io.EOF {
					break
				}
				if err != nil {
					return
				}
			}
			c.Write(binary.BigEndian.AppendUint64(nil, uint64(n)))
		}()
	}
}

func send(addr string, conns int, total int64) error {
	per := total / int64(conns)
	buf := make([]byte, 256<<10)
	rand.NewChaCha8([32]byte{1}).Read(buf)
	start := time.Now()
	errs := make(chan error, conns)
	var wg sync.WaitGroup
	for range conns {
		wg.Go(func() { errs <- sendOne(addr, buf, per) })
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	for err := range errs {
		if err != nil {
			return err
		}
	}
	sent := per * int64(conns)
	fmt.Printf("bytes=%d seconds=%.3f bytes_per_sec=%.0f\n", sent, elapsed.Seconds(), float64(sent)/elapsed.Seconds())
	return nil
}

func sendOne(addr string, buf []byte, n int64) error {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	c := nc.(*net.TCPConn)
	defer c.Close()
	for left := n; left > 0; {
		m := min(int64(len(buf)), left)
		if _, err := c.Write(buf[:m]); err != nil {
			return err
		}
		left -= m
	}
	if err := c.CloseWrite(); err != nil {
		return err
	}
	var ack [8]byte
	if _, err := io.ReadFull(c, ack[:]); err != nil {
		return fmt.Errorf("reading the count: %w", err)
	}
	if got := int64(binary.BigEndian.Uint64(ack[:])); got != n {
		return fmt.Errorf("the sink read %d bytes of %d", got, n)
	}
	return nil
}
