package mediaapi_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"parley/internal/config"
)

// genReader produces n deterministic pseudo-random bytes (xorshift64*)
// without holding them in memory.
type genReader struct {
	state uint64
	left  int64
}

func (g *genReader) Read(p []byte) (int, error) {
	if g.left <= 0 {
		return 0, io.EOF
	}
	n := len(p)
	if int64(n) > g.left {
		n = int(g.left)
	}
	for i := 0; i < n; {
		g.state ^= g.state >> 12
		g.state ^= g.state << 25
		g.state ^= g.state >> 27
		v := g.state * 2685821657736338717
		for j := 0; j < 8 && i < n; j++ {
			p[i] = byte(v >> (8 * j))
			i++
		}
	}
	g.left -= int64(n)
	return n, nil
}

// memPeak samples the process's memory until stopped: Go heap in use, memory
// obtained from the OS, and resident set size (Linux).
type memPeak struct {
	stop                  chan struct{}
	wg                    sync.WaitGroup
	heap, sys, rss        uint64
	baseHeap, baseSys, bR uint64
}

func rssBytes() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func startMemPeak() *memPeak {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m := &memPeak{stop: make(chan struct{}), baseHeap: ms.HeapInuse, baseSys: ms.Sys, bR: rssBytes()}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		tick := time.NewTicker(25 * time.Millisecond)
		defer tick.Stop()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			m.heap = max(m.heap, ms.HeapInuse)
			m.sys = max(m.sys, ms.Sys)
			m.rss = max(m.rss, rssBytes())
			select {
			case <-m.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return m
}

// growth stops sampling and returns the peak growth of heap, sys and RSS.
func (m *memPeak) growth() (heap, sys, rss int64) {
	close(m.stop)
	m.wg.Wait()
	return int64(m.heap) - int64(m.baseHeap), int64(m.sys) - int64(m.baseSys), int64(m.rss) - int64(m.bR)
}

// TestUpload300MiB streams a 300 MiB upload through real HTTP and back,
// checking the content hash and that the process's memory grows by less than
// 100 MiB (the server is in this process).
func TestUpload300MiB(t *testing.T) {
	if testing.Short() {
		t.Skip("300 MiB upload skipped in -short mode")
	}
	const size = 300 << 20
	const limit = 100 << 20
	srv := newServer(t, func(c *config.Config) { c.Media.MaxUploadSize = 310 << 20 })
	alice := srv.Register(t, "alice")
	admin := makeAdmin(t, srv, "admin")

	want := sha256.New()
	body := io.TeeReader(&genReader{state: 0x9e3779b97f4a7c15, left: size}, want)
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/_matrix/media/v3/upload?filename=big.bin", body)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = size
	req.Header.Set("Authorization", "Bearer "+alice.AccessToken)
	req.Header.Set("Content-Type", "application/octet-stream")

	start := time.Now()
	mem := startMemPeak()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var up struct {
		ContentURI string `json:"content_uri"`
	}
	err = json.NewDecoder(resp.Body).Decode(&up)
	resp.Body.Close()
	heap, sys, rss := mem.growth()
	if resp.StatusCode != http.StatusOK || err != nil {
		t.Fatalf("upload: %d %v", resp.StatusCode, err)
	}
	t.Logf("upload of 300 MiB: %v; peak growth: heap in use %d KiB, sys %d KiB, RSS %d KiB", time.Since(start).Round(time.Millisecond), heap>>10, sys>>10, rss>>10)
	if heap >= limit || sys >= limit || rss >= limit {
		t.Fatalf("memory grew by heap %d MiB / sys %d MiB / RSS %d MiB during the upload, limit 100 MiB", heap>>20, sys>>20, rss>>20)
	}
	wantHash := hex.EncodeToString(want.Sum(nil))
	media := strings.TrimPrefix(up.ContentURI, "mxc://")
	m, err := srv.HS.Store.GetMedia(t.Context(), "hs1.test", strings.TrimPrefix(media, "hs1.test/"))
	if err != nil || m.Size != size || m.SHA256 != wantHash {
		t.Fatalf("stored %+v (%v), want size %d hash %s", m, err, size, wantHash)
	}

	// Stream it back and compare hashes.
	start = time.Now()
	mem = startMemPeak()
	dreq, _ := http.NewRequest(http.MethodGet, srv.URL+"/_matrix/client/v1/media/download/"+media, nil)
	dreq.Header.Set("Authorization", "Bearer "+alice.AccessToken)
	dresp, err := http.DefaultClient.Do(dreq)
	if err != nil {
		t.Fatal(err)
	}
	got := sha256.New()
	n, err := io.Copy(got, dresp.Body)
	dresp.Body.Close()
	heap, sys, rss = mem.growth()
	if err != nil || n != size || hex.EncodeToString(got.Sum(nil)) != wantHash {
		t.Fatalf("download: %d bytes, %v, hash match %v", n, err, hex.EncodeToString(got.Sum(nil)) == wantHash)
	}
	t.Logf("download of 300 MiB: %v; peak growth: heap in use %d KiB, sys %d KiB, RSS %d KiB", time.Since(start).Round(time.Millisecond), heap>>10, sys>>10, rss>>10)
	if heap >= limit || sys >= limit || rss >= limit {
		t.Fatalf("memory grew by heap %d MiB / sys %d MiB / RSS %d MiB during the download", heap>>20, sys>>20, rss>>20)
	}

	// Clean up the file through the admin API.
	expect(t, do(t, admin, http.MethodDelete, "/_synapse/admin/v1/media/"+media, nil), http.StatusOK, "")
	if n := blobCount(t, srv); n != 0 {
		t.Fatalf("%d blobs left after deleting the upload", n)
	}
}
