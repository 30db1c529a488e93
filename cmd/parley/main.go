// Command parley is the Parley Matrix homeserver.
//
//	parley [serve] [--config parley.yaml] [--listen host:port]   run the server (default: no config, ./data, localhost)
//	parley generate-config --server-name example.org > parley.yaml
//	parley generate-keys --private-key data/signing.key
//	parley register-user --config parley.yaml --user alice --password secret [--admin]
//	parley register-user --url http://127.0.0.1:8008 --shared-secret S --user alice --password secret [--admin]
//	parley export --config parley.yaml (--room !id:server | --user @u:server) [--from ms] [--to ms] [--keyword w] [--format jsonl|html] [--out file]
//	parley version
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.uber.org/zap"

	"parley/internal/config"
	"parley/internal/homeserver"
	"parley/internal/logging"
	"parley/internal/signing"
)

func main() {
	args := os.Args[1:]
	cmd := "serve"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "serve":
		err = serve(args)
	case "generate-config":
		err = generateConfig(args)
	case "generate-keys":
		err = generateKeys(args)
	case "register-user":
		err = registerUser(args)
	case "export":
		err = export(args)
	case "version":
		fmt.Println("parley", homeserver.Version)
	default:
		err = fmt.Errorf("unknown command %q (serve, generate-config, generate-keys, register-user, export, version)", cmd)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "parley:", err)
		os.Exit(1)
	}
}

// loadConfig loads path, or, when path is empty, uses the no-config defaults.
func loadConfig(path string) (config.Config, error) {
	if path == "" {
		cfg := config.Defaults()
		cfg.ApplyEnv()
		return cfg, cfg.Validate()
	}
	return config.Load(path)
}

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	cfgPath := fs.String("config", "", "path to the YAML config (default: built-in defaults, data under ./data)")
	listen := fs.String("listen", "", "override listen.http (host:port; port 0 picks a free port)")
	pprofAddr := fs.String("pprof", "", "serve Go profiling endpoints (/debug/pprof/) on this loopback host:port")
	_ = fs.Parse(args)
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	if *listen != "" {
		cfg.Listen.HTTP = *listen
		if err := cfg.Validate(); err != nil {
			return err
		}
	}
	log, err := logging.New(cfg.Log.Level)
	if err != nil {
		return err
	}
	defer log.Sync() //nolint:errcheck

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	hs, err := homeserver.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer hs.Close()
	if *pprofAddr != "" {
		if err := servePprof(*pprofAddr, log); err != nil {
			return err
		}
	}

	var servers []*http.Server
	errc := make(chan error, 2)
	start := func(addr string, tls bool) error {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return err
		}
		srv := &http.Server{Handler: hs.Handler(), ReadHeaderTimeout: 30 * time.Second, IdleTimeout: 5 * time.Minute}
		servers = append(servers, srv)
		go func() {
			if tls {
				errc <- srv.ServeTLS(ln, cfg.Listen.TLSCert, cfg.Listen.TLSKey)
			} else {
				errc <- srv.Serve(ln)
			}
		}()
		log.Info("listening", zap.String("addr", ln.Addr().String()), zap.Bool("tls", tls), zap.String("server_name", cfg.ServerName))
		return nil
	}
	if cfg.Listen.HTTP != "" {
		if err := start(cfg.Listen.HTTP, false); err != nil {
			return err
		}
	}
	if cfg.Listen.HTTPS != "" {
		if err := start(cfg.Listen.HTTPS, true); err != nil {
			return err
		}
	}
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	}
	// Stop accepting, let in-flight requests finish, then close the database (deferred).
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, srv := range servers {
		_ = srv.Shutdown(shutdownCtx)
	}
	return nil
}

func generateConfig(args []string) error {
	fs := flag.NewFlagSet("generate-config", flag.ExitOnError)
	name := fs.String("server-name", "localhost", "the server name (the part after : in user IDs)")
	out := fs.String("o", "", "write to this file (mode 0600) instead of standard output")
	_ = fs.Parse(args)
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return err
	}
	b, err := config.GenerateYAML(*name, hex.EncodeToString(secret))
	if err != nil {
		return err
	}
	if *out != "" {
		return os.WriteFile(*out, b, 0o600)
	}
	_, err = os.Stdout.Write(b)
	return err
}

func generateKeys(args []string) error {
	fs := flag.NewFlagSet("generate-keys", flag.ExitOnError)
	path := fs.String("private-key", "data/signing.key", "where to write the ed25519 signing key")
	_ = fs.Parse(args)
	if _, err := os.Stat(*path); err == nil {
		return fmt.Errorf("%s exists; refusing to overwrite a signing key", *path)
	}
	key := signing.Generate()
	if err := signing.Write(*path, key); err != nil {
		return err
	}
	fmt.Println("wrote", *path, "key id", key.ID)
	return nil
}

func registerUser(args []string) error {
	fs := flag.NewFlagSet("register-user", flag.ExitOnError)
	cfgPath := fs.String("config", "", "config of the server whose database gets the user (default: built-in defaults)")
	user := fs.String("user", "", "localpart of the new user (required)")
	password := fs.String("password", "", "password (default: PARLEY_PASSWORD)")
	admin := fs.Bool("admin", false, "make the user a server admin")
	url := fs.String("url", "", "register through this running server's shared-secret API instead of the database")
	secret := fs.String("shared-secret", "", "registration.shared_secret of the server at --url (default: PARLEY_REGISTRATION_SHARED_SECRET, or the config's)")
	_ = fs.Parse(args)
	if *password == "" {
		*password = os.Getenv("PARLEY_PASSWORD")
	}
	if *user == "" || *password == "" {
		return errors.New("register-user: --user and --password (or PARLEY_PASSWORD) are required")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var (
		userID fmt.Stringer
		err    error
	)
	if *url != "" {
		s := *secret
		if s == "" {
			cfg, cerr := loadConfig(*cfgPath)
			if cerr != nil {
				return cerr
			}
			s = cfg.Registration.SharedSecret
		}
		if s == "" {
			return errors.New("register-user: --url needs --shared-secret")
		}
		userID, err = homeserver.RegisterUserRemote(ctx, *url, s, *user, *password, *admin)
	} else {
		cfg, cerr := loadConfig(*cfgPath)
		if cerr != nil {
			return cerr
		}
		userID, err = homeserver.RegisterUser(ctx, cfg, *user, *password, *admin)
	}
	if err != nil {
		return err
	}
	fmt.Println("registered", userID)
	return nil
}

// export writes an e-discovery export of a room's or a user's history.
func export(args []string) error {
	fs := flag.NewFlagSet("export", flag.ExitOnError)
	cfgPath := fs.String("config", "", "config of the server whose database is exported (default: built-in defaults)")
	room := fs.String("room", "", "room ID to export")
	user := fs.String("user", "", "user ID whose events to export (with --room: only theirs in that room)")
	from := fs.Int64("from", 0, "only events at or after this origin_server_ts (ms)")
	to := fs.Int64("to", 0, "only events at or before this origin_server_ts (ms)")
	keyword := fs.String("keyword", "", "only events whose content contains this (case-insensitive)")
	format := fs.String("format", "jsonl", "jsonl (JSON Lines) or html (readable transcript)")
	outPath := fs.String("out", "", "output file (default: standard output)")
	_ = fs.Parse(args)
	if *room == "" && *user == "" {
		return errors.New("export: --room or --user is required")
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	out := os.Stdout
	if *outPath != "" {
		f, err := os.OpenFile(*outPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
		if err != nil {
			return err
		}
		defer f.Close()
		out = f
	}
	n, err := homeserver.Export(context.Background(), cfg, homeserver.ExportRequest{
		RoomID: *room, UserID: *user, FromTS: *from, ToTS: *to, Keyword: *keyword, Format: *format,
	}, out)
	if err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "exported", n, "events")
	return nil
}
