//go:build parley_complement

// This file is Parley's own Complement deployment shim. It is not part of
// Parley's module (the build tag keeps it out of Parley's builds): it belongs
// to package complement, next to Complement's test_main.go, and takes effect
// in test binaries built with the tag parley_complement.
//
// When PARLEY_COMPLEMENT_START is set, every complement.Deploy(t, n) starts n
// Parley processes through sytest/complement/start-parley.sh instead of
// Docker containers: hsN listens on 127.0.0.(N+1) (client HTTP :8008,
// federation HTTPS :8448). The names hs1, hs2, ... must resolve to those
// addresses, and host.docker.internal (where Complement's own federation
// servers listen, on all interfaces) to 127.0.0.1: run the test binary as
// root in a private mount and network namespace (unshare -m -n, loopback up)
// with a private /etc/hosts bind-mounted over the real one. Only one
// deployment runs at a time, so run the tests with -test.parallel=1.
//
// Environment:
//
//	PARLEY_COMPLEMENT_START    path of start-parley.sh (enables the shim)
//	PARLEY_COMPLEMENT_WORKDIR  directory for the CA files and each server's data
//	PARLEY_BINARY              the parley executable, passed on to start-parley.sh
package complement

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/matrix-org/complement/client"
	"github.com/matrix-org/complement/config"
	"github.com/matrix-org/complement/ct"
	"github.com/matrix-org/complement/helpers"
	"github.com/matrix-org/gomatrixserverlib/spec"
)

func init() {
	if os.Getenv("PARLEY_COMPLEMENT_START") != "" {
		customDeployer = parleyDeploy
	}
}

// parleyProcs are the servers of the live deployment, so that a deployment a
// test failed to destroy cannot hold the addresses the next one needs.
var (
	parleyMu       sync.Mutex
	parleyLive     *parleyDeployment
	parleyCAOnce   sync.Once
	parleyCAErr    error
	parleyDeploySN atomic.Int64
)

type parleyServer struct {
	name    string // hs1
	ip      string // 127.0.0.2
	dir     string
	baseURL string // http://127.0.0.2:8008

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
	logFile *os.File
}

type parleyDeployment struct {
	cfg       *config.Complement
	workdir   string
	servers   map[string]*parleyServer
	localpart atomic.Int64
	destroyed bool
}

func parleyWorkdir() string {
	if d := os.Getenv("PARLEY_COMPLEMENT_WORKDIR"); d != "" {
		return d
	}
	return filepath.Join(os.TempDir(), "parley-complement")
}

// parleyWriteCA writes Complement's in-memory CA to files start-parley.sh can use.
func parleyWriteCA(cfg *config.Complement, dir string) (certPath, keyPath string, err error) {
	certPath, keyPath = filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")
	parleyCAOnce.Do(func() {
		if parleyCAErr = os.MkdirAll(dir, 0o700); parleyCAErr != nil {
			return
		}
		cert, err := cfg.CACertificateBytes()
		if err != nil {
			parleyCAErr = err
			return
		}
		key, err := cfg.CAPrivateKeyBytes()
		if err != nil {
			parleyCAErr = err
			return
		}
		if parleyCAErr = os.WriteFile(certPath, cert, 0o644); parleyCAErr != nil {
			return
		}
		parleyCAErr = os.WriteFile(keyPath, key, 0o600)
	})
	return certPath, keyPath, parleyCAErr
}

var parleyUnsafe = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

func parleyDeploy(t ct.TestLike, numServers int, cfg *config.Complement) Deployment {
	t.Helper()
	parleyMu.Lock()
	if parleyLive != nil && !parleyLive.destroyed {
		t.Logf("parley: destroying a deployment a previous test left running")
		parleyLive.stopAll()
	}
	parleyMu.Unlock()

	workdir := parleyWorkdir()
	if _, _, err := parleyWriteCA(cfg, workdir); err != nil {
		ct.Fatalf(t, "parley: writing the CA: %s", err)
	}
	if numServers < 1 || numServers > 200 {
		ct.Fatalf(t, "parley: cannot deploy %d servers", numServers)
	}
	testDir := fmt.Sprintf("%04d-%s", parleyDeploySN.Add(1), parleyUnsafe.ReplaceAllString(t.Name(), "_"))
	d := &parleyDeployment{cfg: cfg, workdir: workdir, servers: map[string]*parleyServer{}}
	for i := 1; i <= numServers; i++ {
		name := fmt.Sprintf("hs%d", i)
		ip := fmt.Sprintf("127.0.0.%d", i+1)
		d.servers[name] = &parleyServer{
			name: name, ip: ip,
			dir:     filepath.Join(workdir, testDir, name),
			baseURL: "http://" + ip + ":8008",
		}
	}
	parleyMu.Lock()
	parleyLive = d
	parleyMu.Unlock()
	for _, s := range d.servers {
		if err := d.start(s); err != nil {
			d.stopAll()
			ct.Fatalf(t, "parley: starting %s: %s", s.name, err)
		}
	}
	return d
}

// start runs start-parley.sh for s and waits until its client API answers.
func (d *parleyDeployment) start(s *parleyServer) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return fmt.Errorf("%s is already running", s.name)
	}
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return err
	}
	logFile, err := os.OpenFile(filepath.Join(s.dir, "parley.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	caCert, caKey, _ := parleyWriteCA(d.cfg, d.workdir)
	cmd := exec.Command(os.Getenv("PARLEY_COMPLEMENT_START"), s.name, s.ip, s.dir)
	cmd.Env = append(os.Environ(), "COMPLEMENT_CA_CERT="+caCert, "COMPLEMENT_CA_KEY="+caKey)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// If the test binary dies (a panicking test), take the server with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return err
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.cmd, s.done, s.logFile = cmd, done, logFile

	deadline := time.Now().Add(d.cfg.SpawnHSTimeout)
	hc := &http.Client{Timeout: time.Second}
	for {
		resp, err := hc.Get(s.baseURL + "/_matrix/client/versions")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-done:
			s.cmd = nil
			logFile.Close()
			return fmt.Errorf("exited before answering; log:\n%s", parleyTail(s, 30))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.mu.Unlock()
			d.stop(s)
			s.mu.Lock()
			return fmt.Errorf("no answer within %s; log:\n%s", d.cfg.SpawnHSTimeout, parleyTail(s, 30))
		}
	}
}

// stop sends SIGTERM (SIGKILL after 10s) and waits for the process to exit.
func (d *parleyDeployment) stop(s *parleyServer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGCONT) // in case it was paused
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd = nil
	s.logFile.Close()
}

func (d *parleyDeployment) stopAll() {
	var wg sync.WaitGroup
	for _, s := range d.servers {
		wg.Add(1)
		go func(s *parleyServer) { defer wg.Done(); d.stop(s) }(s)
	}
	wg.Wait()
	d.destroyed = true
}

func parleyTail(s *parleyServer, n int) string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "parley.log"))
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (d *parleyDeployment) server(t ct.TestLike, hsName, op string) *parleyServer {
	t.Helper()
	s, ok := d.servers[hsName]
	if !ok {
		ct.Fatalf(t, "parley: %s: no server %q in this deployment", op, hsName)
	}
	return s
}

func (d *parleyDeployment) newClient(t ct.TestLike, s *parleyServer) *client.CSAPI {
	return client.NewCSAPI(client.CSAPIOpts{
		BaseURL:          s.baseURL,
		Client:           client.NewLoggedClient(t, s.name, nil),
		SyncUntilTimeout: 5 * time.Second,
		Debug:            d.cfg.DebugLoggingEnabled,
	})
}

// GetFullyQualifiedHomeserverName is the server name itself: hs1 resolves to its address.
func (d *parleyDeployment) GetFullyQualifiedHomeserverName(t ct.TestLike, hsName string) spec.ServerName {
	return spec.ServerName(d.server(t, hsName, "GetFullyQualifiedHomeserverName").name)
}

func (d *parleyDeployment) UnauthenticatedClient(t ct.TestLike, hsName string) *client.CSAPI {
	t.Helper()
	return d.newClient(t, d.server(t, hsName, "UnauthenticatedClient"))
}

func (d *parleyDeployment) Register(t ct.TestLike, hsName string, opts helpers.RegistrationOpts) *client.CSAPI {
	t.Helper()
	c := d.newClient(t, d.server(t, hsName, "Register"))
	c.Password = opts.Password
	if c.Password == "" {
		c.Password = "complement_meets_min_password_req"
	}
	localpart := fmt.Sprintf("user-%d", d.localpart.Add(1))
	if opts.LocalpartSuffix != "" {
		localpart += "-" + opts.LocalpartSuffix
	}
	if opts.IsAdmin {
		c.UserID, c.AccessToken, c.DeviceID = c.RegisterSharedSecret(t, localpart, c.Password, true)
	} else {
		c.UserID, c.AccessToken, c.DeviceID = c.RegisterUser(t, localpart, c.Password)
	}
	return c
}

func (d *parleyDeployment) Login(t ct.TestLike, hsName string, existing *client.CSAPI, opts helpers.LoginOpts) *client.CSAPI {
	t.Helper()
	c := d.newClient(t, d.server(t, hsName, "Login"))
	localpart, _, ok := strings.Cut(strings.TrimPrefix(existing.UserID, "@"), ":")
	if !ok {
		ct.Fatalf(t, "parley: Login: %q is not a user ID", existing.UserID)
	}
	c.Password = existing.Password
	if opts.Password != "" {
		c.Password = opts.Password
	}
	var loginOpts []client.LoginOpt
	if opts.DeviceID != "" {
		loginOpts = append(loginOpts, client.WithDeviceID(opts.DeviceID))
	}
	c.UserID, c.AccessToken, c.DeviceID = c.LoginUser(t, localpart, c.Password, loginOpts...)
	return c
}

// AppServiceUser is unsupported: the shim registers no application services.
func (d *parleyDeployment) AppServiceUser(t ct.TestLike, hsName, appServiceUserID string) *client.CSAPI {
	t.Helper()
	t.Skipf("parley: application services are not set up by the Parley deployment")
	return nil
}

// Restart stops and starts every server, keeping their data.
func (d *parleyDeployment) Restart(t ct.TestLike) error {
	t.Helper()
	for _, s := range d.servers {
		d.stop(s)
		if err := d.start(s); err != nil {
			t.Errorf("parley: restarting %s: %s", s.name, err)
			return err
		}
	}
	return nil
}

func (d *parleyDeployment) StopServer(t ct.TestLike, hsName string) {
	t.Helper()
	d.stop(d.server(t, hsName, "StopServer"))
}

func (d *parleyDeployment) StartServer(t ct.TestLike, hsName string) {
	t.Helper()
	if err := d.start(d.server(t, hsName, "StartServer")); err != nil {
		ct.Fatalf(t, "parley: StartServer %s: %s", hsName, err)
	}
}

func (d *parleyDeployment) signal(t ct.TestLike, hsName, op string, sig syscall.Signal) {
	t.Helper()
	s := d.server(t, hsName, op)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		ct.Fatalf(t, "parley: %s: %s is not running", op, hsName)
	}
	// start-parley.sh execs parley, so the pid is the server's.
	if err := s.cmd.Process.Signal(sig); err != nil {
		ct.Fatalf(t, "parley: %s %s: %s", op, hsName, err)
	}
}

func (d *parleyDeployment) PauseServer(t ct.TestLike, hsName string) {
	t.Helper()
	d.signal(t, hsName, "PauseServer", syscall.SIGSTOP)
}

func (d *parleyDeployment) UnpauseServer(t ct.TestLike, hsName string) {
	t.Helper()
	d.signal(t, hsName, "UnpauseServer", syscall.SIGCONT)
}

// ContainerID names the server's process (there are no containers).
func (d *parleyDeployment) ContainerID(t ct.TestLike, hsName string) string {
	t.Helper()
	s := d.server(t, hsName, "ContainerID")
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return "parley-" + s.name
	}
	return fmt.Sprintf("parley-%s-%d", s.name, s.cmd.Process.Pid)
}

// Destroy stops every server; on failure (or COMPLEMENT_ALWAYS_PRINT_SERVER_LOGS)
// it prints the end of each server's log.
func (d *parleyDeployment) Destroy(t ct.TestLike) {
	t.Helper()
	d.stopAll()
	if t.Failed() || d.cfg.AlwaysPrintServerLogs {
		for _, s := range d.servers {
			t.Logf("parley: last lines of %s/parley.log:\n%s", s.dir, parleyTail(s, 40))
		}
	}
}

func (d *parleyDeployment) GetConfig() *config.Complement { return d.cfg }

// RoundTripper sends requests for hsN (whatever the scheme: gomatrixserverlib
// uses matrix-federation://) over HTTPS to that server's federation listener,
// and requests for other hosts (Complement's own servers) over HTTPS as
// addressed, verifying certificates against Complement's CA.
func (d *parleyDeployment) RoundTripper() http.RoundTripper {
	pool := x509.NewCertPool()
	pool.AddCert(d.cfg.CACertificate)
	return &parleyRoundTripper{d: d, pool: pool, byHost: map[string]*http.Transport{}}
}

type parleyRoundTripper struct {
	d      *parleyDeployment
	pool   *x509.CertPool
	mu     sync.Mutex
	byHost map[string]*http.Transport // keyed by TLS server name ("" for the default)
}

func (rt *parleyRoundTripper) transportFor(serverName string) *http.Transport {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if tr, ok := rt.byHost[serverName]; ok {
		return tr
	}
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		TLSClientConfig:     &tls.Config{RootCAs: rt.pool, ServerName: serverName, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout: 10 * time.Second,
	}
	rt.byHost[serverName] = tr
	return tr
}

func (rt *parleyRoundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	host := req.URL.Hostname()
	if s, ok := rt.d.servers[host]; ok {
		// Dial the server's address; TLS still checks the certificate for hsN.
		if req.Host == "" {
			req.Host = req.URL.Host
		}
		req.URL.Host = net.JoinHostPort(s.ip, "8448")
		req.URL.Scheme = "https"
		return rt.transportFor(host).RoundTrip(req)
	}
	req.URL.Scheme = "https"
	return rt.transportFor("").RoundTrip(req)
}

// Network is empty: the servers share the loopback interface.
func (d *parleyDeployment) Network() string { return "" }
