// go-agent: an edge agent built only from hashicorp/yamux and gorilla/websocket, the libraries
// the agents in the field use. The integration tests run it against our remote-proxy to prove
// wire compatibility with an implementation we did not write. Built by test/integration in
// GOPATH mode from Debian's golang-*-dev packages (no module proxy here).
//
//	go-agent -url ws://127.0.0.1:3800/tunnel -token T -target 127.0.0.1:8080 [-mode server|client]
//
// -mode server (default) is the field agent: yamux server, accepts streams and connects each
// to -target. -mode client makes it open streams itself (the proxy must refuse them), to check
// our handling of a peer in the wrong role.
package main

import (
	"crypto/tls"
	"crypto/x509"
	"flag"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/hashicorp/yamux"
)

// wsConn adapts a gorilla WebSocket to the net.Conn yamux wants: binary messages carry a byte
// stream, and a read may span messages.
type wsConn struct {
	ws     *websocket.Conn
	reader io.Reader
	wmu    sync.Mutex
}

func (c *wsConn) Read(p []byte) (int, error) {
	for {
		if c.reader == nil {
			typ, r, err := c.ws.NextReader()
			if err != nil {
				return 0, err
			}
			if typ != websocket.BinaryMessage {
				continue
			}
			c.reader = r
		}
		n, err := c.reader.Read(p)
		if err == io.EOF {
			c.reader = nil
			if n > 0 {
				return n, nil
			}
			continue
		}
		return n, err
	}
}

func (c *wsConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *wsConn) Close() error                       { return c.ws.Close() }
func (c *wsConn) LocalAddr() net.Addr                { return c.ws.LocalAddr() }
func (c *wsConn) RemoteAddr() net.Addr               { return c.ws.RemoteAddr() }
func (c *wsConn) SetDeadline(t time.Time) error      { return nil }
func (c *wsConn) SetReadDeadline(t time.Time) error  { return c.ws.SetReadDeadline(t) }
func (c *wsConn) SetWriteDeadline(t time.Time) error { return c.ws.SetWriteDeadline(t) }

func serve(stream net.Conn, target string) {
	defer stream.Close()
	dst, err := net.Dial("tcp", target)
	if err != nil {
		log.Printf("target: %v", err)
		return
	}
	defer dst.Close()
	done := make(chan struct{}, 2)
	go func() {
		io.Copy(dst, stream)
		if tc, ok := dst.(*net.TCPConn); ok {
			tc.CloseWrite()
		}
		done <- struct{}{}
	}()
	go func() {
		io.Copy(stream, dst)
		stream.Close()
		done <- struct{}{}
	}()
	<-done
	<-done
}

var caFile string

func runOnce(url, token, target, mode string) error {
	header := http.Header{}
	header.Set("X-Agent-Version", "go-agent/1")
	dialer := websocket.Dialer{Subprotocols: []string{"bearer." + token}, HandshakeTimeout: 10 * time.Second}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return err
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		dialer.TLSClientConfig = &tls.Config{RootCAs: pool}
	}
	ws, resp, err := dialer.Dial(url, header)
	if err != nil {
		if resp != nil {
			log.Printf("dial: %v (HTTP %d)", err, resp.StatusCode)
		}
		return err
	}
	log.Printf("connected, subprotocol %q", ws.Subprotocol())
	conn := &wsConn{ws: ws}
	cfg := yamux.DefaultConfig()
	cfg.LogOutput = os.Stderr
	if mode == "client" {
		sess, err := yamux.Client(conn, cfg)
		if err != nil {
			return err
		}
		st, err := sess.Open()
		if err == nil {
			_, err = st.Write([]byte("hello"))
			buf := make([]byte, 1)
			_, err = st.Read(buf)
			log.Printf("stream opened by the agent ended: %v", err)
		}
		<-sess.CloseChan()
		return nil
	}
	sess, err := yamux.Server(conn, cfg)
	if err != nil {
		return err
	}
	for {
		st, err := sess.Accept()
		if err != nil {
			return err
		}
		go serve(st, target)
	}
}

func main() {
	url := flag.String("url", "ws://127.0.0.1:3800/tunnel", "tunnel URL")
	token := flag.String("token", "", "device credential")
	target := flag.String("target", "127.0.0.1:8080", "local service")
	mode := flag.String("mode", "server", "server (field agent) or client (wrong role)")
	once := flag.Bool("once", false, "do not reconnect")
	flag.StringVar(&caFile, "ca", "", "PEM CA file for wss:// (default: system roots)")
	flag.Parse()
	for {
		err := runOnce(*url, *token, *target, *mode)
		log.Printf("tunnel ended: %v", err)
		if *once {
			os.Exit(1)
		}
		time.Sleep(300 * time.Millisecond)
	}
}
