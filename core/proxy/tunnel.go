package proxy

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"

	"github.com/wproxy/wproxy/core/balancer"
	"github.com/wproxy/wproxy/core/upstream"
)

// tunnel relays an upgraded connection (101 Switching Protocols, such as a
// WebSocket) byte for byte until either side closes.
func (h *Handler) tunnel(w http.ResponseWriter, r *http.Request, b *balancer.Backend, conn *upstream.Conn) int {
	hj, ok := w.(http.Hijacker)
	if !ok {
		conn.Close()
		return h.fail(w, r, http.StatusBadGateway, nil, "backend %s switched protocols, which this listener cannot relay", b.Address)
	}
	client, brw, err := hj.Hijack()
	if err != nil {
		conn.Close()
		return 0
	}
	defer conn.Close()
	defer client.Close()
	untrack := h.tunnels.add(client, conn.NetConn())
	defer untrack()

	// Send the 101 and its header ourselves: the connection is ours now.
	brw.WriteString("HTTP/1.1 101 Switching Protocols\r\n")
	w.Header().Write(brw)
	brw.WriteString("\r\n")
	if err := brw.Flush(); err != nil {
		return 0 // the client is gone
	}
	up := conn.NetConn()
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Client to backend, starting with what the client sent after its
		// request.
		copyHalf(up, brw.Reader)
	}()
	// Backend to client, starting with what the backend sent after its 101.
	copyHalf(client, conn.Reader())
	<-done
	h.logger.Debug("tunnel closed", "backend", b.Address, "path", r.URL.Path)
	return http.StatusSwitchingProtocols
}

// copyHalf copies one direction and then closes the writing side of dst, so
// that the peer sees the end of the stream while the other direction goes on.
func copyHalf(dst net.Conn, src *bufio.Reader) {
	if n := src.Buffered(); n > 0 {
		pending, _ := src.Peek(n)
		if _, err := dst.Write(pending); err != nil {
			dst.Close()
			return
		}
		src.Discard(n)
	}
	// Copy from the underlying connection once the buffer is drained, so
	// that io.Copy can splice between TCP sockets.
	_, err := io.Copy(dst, src)
	if cw, ok := dst.(interface{ CloseWrite() error }); ok && err == nil {
		cw.CloseWrite()
	} else {
		dst.Close()
	}
}

// tunnels tracks upgraded connections so that shutdown can close them: the
// HTTP server no longer sees a connection once it is hijacked.
type tunnels struct {
	mu    sync.Mutex
	conns map[*[2]net.Conn]struct{}
}

func (t *tunnels) add(a, b net.Conn) (remove func()) {
	pair := &[2]net.Conn{a, b}
	t.mu.Lock()
	if t.conns == nil {
		t.conns = map[*[2]net.Conn]struct{}{}
	}
	t.conns[pair] = struct{}{}
	t.mu.Unlock()
	return func() {
		t.mu.Lock()
		delete(t.conns, pair)
		t.mu.Unlock()
	}
}

// CloseTunnels closes every upgraded connection, for shutdown; it returns
// how many there were.
func (h *Handler) CloseTunnels() int {
	h.tunnels.mu.Lock()
	defer h.tunnels.mu.Unlock()
	for pair := range h.tunnels.conns {
		pair[0].Close()
		pair[1].Close()
	}
	n := len(h.tunnels.conns)
	if n > 0 {
		h.logger.Log(context.Background(), slog.LevelInfo, "closed upgraded connections at shutdown", "count", n)
	}
	return n
}
