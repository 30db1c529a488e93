// Command parley is the Parley Matrix homeserver.
//
//	parley [serve] [--config parley.yaml]   run the server (default: no config, ./data, localhost)
//	parley generate-config --server-name example.org > parley.yaml
//	parley generate-keys --private-key data/signing.key
//	parley register-user --config parley.yaml --user alice --password secret [--admin]
//	parley version
package main

import (
	"context"
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
	case "version":
		fmt.Println("parley", homeserver.Version)
	default:
		err = fmt.Errorf("unknown command %q (serve, generate-config, generate-keys, register-user, version)", cmd)
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
	_ = fs.Parse(args)
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
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
	_ = fs.Parse(args)
	cfg := config.Generated(*name)
	if err := cfg.Validate(); err != nil {
		return err
	}
	b, err := cfg.Marshal()
	if err != nil {
		return err
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
	return errors.New("register-user: not implemented yet")
}
