// extauthz-client: Envoy's own ext_authz v3 gRPC client (github.com/envoyproxy/go-control-plane)
// pointed at ztsoc's gRPC front, for tests and bench/policy.py. ztsoc did not write these
// message types: requests are parsed and responses printed with Envoy's descriptors, so a
// field that ztsoc numbers or types differently from Envoy shows up here.
//
//	extauthz-client -addr 127.0.0.1:9191 [-source 127.0.0.2] [-ca CA -cert C -key K] check < requests.jsonl
//	    one CheckRequest per line (Envoy's proto3 JSON: attributes.request.http.method, ...)
//	    in; one line out per request: {"response": CheckResponse} or {"error": "..."}.
//	extauthz-client -addr 127.0.0.1:9191 -c 8 -d 8s load < requests.jsonl
//	    the requests round-robin on c concurrent callers (one HTTP/2 connection each) for
//	    d; prints {"requests", "errors", "non_ok", "rps", "p50_ms", "p99_ms"}.
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"sort"
	"sync"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"
)

func readRequests() ([]*authv3.CheckRequest, error) {
	var out []*authv3.CheckRequest
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for line := 1; sc.Scan(); line++ {
		if len(sc.Bytes()) == 0 {
			continue
		}
		req := &authv3.CheckRequest{}
		if err := protojson.Unmarshal(sc.Bytes(), req); err != nil {
			return nil, fmt.Errorf("stdin line %d: %w", line, err)
		}
		out = append(out, req)
	}
	return out, sc.Err()
}

// source: the local address to call from ("" lets the kernel choose), so a test can play a
// proxy at a given address (ztsoc believes reported attributes only from trusted proxies).
var source string

// caFile, certFile, keyFile: TLS to the server (verified against caFile), with a client
// certificate for mutual TLS when certFile/keyFile are given; plaintext when caFile is empty.
var caFile, certFile, keyFile string

func transport() (grpc.DialOption, error) {
	if caFile == "" {
		return grpc.WithTransportCredentials(insecure.NewCredentials()), nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no certificate", caFile)
	}
	cfg := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	if certFile != "" {
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return grpc.WithTransportCredentials(credentials.NewTLS(cfg)), nil
}

func dial(addr string) (authv3.AuthorizationClient, *grpc.ClientConn, error) {
	creds, err := transport()
	if err != nil {
		return nil, nil, err
	}
	opts := []grpc.DialOption{creds}
	if source != "" {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(source)}}
		opts = append(opts, grpc.WithContextDialer(func(ctx context.Context, a string) (net.Conn, error) {
			return d.DialContext(ctx, "tcp", a)
		}))
	}
	conn, err := grpc.NewClient("passthrough:///"+addr, opts...)
	if err != nil {
		return nil, nil, err
	}
	return authv3.NewAuthorizationClient(conn), conn, nil
}

func check(addr string, reqs []*authv3.CheckRequest, timeout time.Duration) error {
	client, conn, err := dial(addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	marshal := protojson.MarshalOptions{UseProtoNames: true}
	for _, req := range reqs {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		resp, err := client.Check(ctx, req)
		cancel()
		if err != nil {
			line, _ := json.Marshal(map[string]string{"error": err.Error()})
			fmt.Fprintln(out, string(line))
			continue
		}
		body, err := marshal.Marshal(resp)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "{\"response\":%s}\n", body)
	}
	return nil
}

func load(addr string, reqs []*authv3.CheckRequest, callers int, d time.Duration, timeout time.Duration) error {
	if len(reqs) == 0 {
		return fmt.Errorf("no requests on stdin")
	}
	var mu sync.Mutex
	var lat []time.Duration
	errors, nonOK := 0, 0
	var wg sync.WaitGroup
	start := time.Now()
	stop := start.Add(d)
	for c := 0; c < callers; c++ {
		client, conn, err := dial(addr)
		if err != nil {
			return err
		}
		defer conn.Close()
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			var mine []time.Duration
			myErrors, myNonOK := 0, 0
			for i := c; time.Now().Before(stop); i += callers {
				ctx, cancel := context.WithTimeout(context.Background(), timeout)
				t0 := time.Now()
				resp, err := client.Check(ctx, reqs[i%len(reqs)])
				el := time.Since(t0)
				cancel()
				if err != nil {
					myErrors++
					continue
				}
				mine = append(mine, el)
				if resp.GetStatus().GetCode() != 0 {
					myNonOK++
				}
			}
			mu.Lock()
			lat = append(lat, mine...)
			errors += myErrors
			nonOK += myNonOK
			mu.Unlock()
		}(c)
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	sort.Slice(lat, func(a, b int) bool { return lat[a] < lat[b] })
	q := func(p float64) float64 {
		if len(lat) == 0 {
			return -1
		}
		return float64(lat[int(float64(len(lat)-1)*p)].Microseconds()) / 1000
	}
	line, _ := json.Marshal(map[string]float64{
		"requests": float64(len(lat)), "errors": float64(errors), "non_ok": float64(nonOK),
		"rps": float64(len(lat)) / elapsed, "p50_ms": q(0.50), "p99_ms": q(0.99),
	})
	fmt.Println(string(line))
	return nil
}

func main() {
	addr := flag.String("addr", "127.0.0.1:9191", "the gRPC ext_authz server")
	callers := flag.Int("c", 8, "load: concurrent callers")
	d := flag.Duration("d", 8*time.Second, "load: duration")
	timeout := flag.Duration("timeout", 5*time.Second, "per-call deadline")
	flag.StringVar(&source, "source", "", "local address to call from (e.g. 127.0.0.2)")
	flag.StringVar(&caFile, "ca", "", "TLS: the CA (PEM) that signed the server's certificate")
	flag.StringVar(&certFile, "cert", "", "mutual TLS: this client's certificate (PEM)")
	flag.StringVar(&keyFile, "key", "", "mutual TLS: its private key (PEM)")
	flag.Parse()
	reqs, err := readRequests()
	if err == nil {
		switch flag.Arg(0) {
		case "check":
			err = check(*addr, reqs, *timeout)
		case "load":
			err = load(*addr, reqs, *callers, *d, *timeout)
		default:
			err = fmt.Errorf("usage: extauthz-client [-addr host:port] check|load < requests.jsonl")
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "extauthz-client:", err)
		os.Exit(2)
	}
}
