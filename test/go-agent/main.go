// go-agent: an edge agent built only from hashicorp/yamux and gorilla/websocket, the libraries
// the agents in the field use. The integration tests run it against our remote-proxy to prove
// wire compatibility with an implementation we did not write. Built by test/integration in
// GOPATH mode from Debian's golang-*-dev packages (no module proxy here).
//
//	go-agent -url ws://127.0.0.1:3800/tunnel -token T -target 127.0.0.1:8080 [-mode server|client]
//
// -mode server (default) is the field agent: yamux server, accepts streams and connects each
// to -target. -mode client makes it open streams itself (the proxy must refuse them), to check
// our handling of a peer in the wrong role. -mode proxy turns it around to test our agent:
// it listens on -listen for one tunnel carrying -token, runs hashicorp's yamux *client* over
// it, sends -streams concurrent "GET /hello" requests through it and exits 0 when every one
// came back 200 with the body "hello, world\n".
package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
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

func probe(listen, token string, streams int) error {
	result := make(chan error, 1)
	upgrader := websocket.Upgrader{Subprotocols: []string{"bearer." + token}}
	mux := http.NewServeMux()
	mux.HandleFunc("/tunnel", func(w http.ResponseWriter, r *http.Request) {
		if websocket.Subprotocols(r)[0] != "bearer."+token {
			http.Error(w, "bad token", http.StatusUnauthorized)
			return
		}
		ws, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			result <- err
			return
		}
		sess, err := yamux.Client(&wsConn{ws: ws}, yamux.DefaultConfig())
		if err != nil {
			result <- err
			return
		}
		errs := make(chan error, streams)
		for i := 0; i < streams; i++ {
			go func() {
				st, err := sess.Open()
				if err != nil {
					errs <- err
					return
				}
				defer st.Close()
				st.Write([]byte("GET /hello HTTP/1.1\r\nHost: device\r\nConnection: close\r\n\r\n"))
				resp, err := http.ReadResponse(bufio.NewReader(st), nil)
				if err != nil {
					errs <- err
					return
				}
				body, err := io.ReadAll(resp.Body)
				if err == nil && (resp.StatusCode != 200 || string(body) != "hello, world\n") {
					err = fmt.Errorf("got %d %q", resp.StatusCode, body)
				}
				errs <- err
			}()
		}
		for i := 0; i < streams; i++ {
			if err := <-errs; err != nil {
				result <- err
				return
			}
		}
		result <- nil
	})
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	go http.Serve(ln, mux)
	select {
	case err := <-result:
		return err
	case <-time.After(60 * time.Second):
		return fmt.Errorf("no tunnel came")
	}
}

func main() {
	url := flag.String("url", "ws://127.0.0.1:3800/tunnel", "tunnel URL")
	token := flag.String("token", "", "device credential")
	target := flag.String("target", "127.0.0.1:8080", "local service")
	mode := flag.String("mode", "server", "server (field agent) or client (wrong role)")
	once := flag.Bool("once", false, "do not reconnect")
	flag.StringVar(&caFile, "ca", "", "PEM CA file for wss:// (default: system roots)")
	listen := flag.String("listen", "127.0.0.1:0", "proxy mode: where to wait for the tunnel")
	streams := flag.Int("streams", 20, "proxy mode: concurrent requests")
	flag.Parse()
	if *mode == "proxy" {
		if err := probe(*listen, *token, *streams); err != nil {
			log.Printf("probe failed: %v", err)
			os.Exit(1)
		}
		log.Printf("probe ok: %d streams", *streams)
		return
	}
	for {
		err := runOnce(*url, *token, *target, *mode)
		log.Printf("tunnel ended: %v", err)
		if *once {
			os.Exit(1)
		}
		time.Sleep(300 * time.Millisecond)
	}
}
