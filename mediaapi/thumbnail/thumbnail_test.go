package thumbnail_test

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/gif"
	"testing"

	_ "golang.org/x/image/webp"

	"parley/mediaapi/internal/testimg"
	"parley/mediaapi/thumbnail"
)

func TestDimensions(t *testing.T) {
	cases := []struct {
		srcW, srcH, reqW, reqH int
		method                 string
		w, h                   int
	}{
		{400, 300, 64, 64, thumbnail.Scale, 64, 48},
		{300, 400, 64, 64, thumbnail.Scale, 48, 64},
		{400, 300, 320, 240, thumbnail.Scale, 320, 240},
		{400, 300, 800, 600, thumbnail.Scale, 400, 300}, // never upscaled
		{1000, 10, 96, 96, thumbnail.Scale, 96, 1},      // at least one pixel
		{400, 300, 32, 32, thumbnail.Crop, 32, 32},
		{400, 300, 100, 50, thumbnail.Crop, 100, 50},
		{400, 300, 800, 800, thumbnail.Crop, 300, 300}, // box shrunk to fit, aspect kept
		{20, 10, 96, 96, thumbnail.Crop, 10, 10},
	}
	for _, c := range cases {
		w, h := thumbnail.Dimensions(c.srcW, c.srcH, c.reqW, c.reqH, c.method)
		if w != c.w || h != c.h {
			t.Errorf("%dx%d %s %dx%d: got %dx%d, want %dx%d", c.srcW, c.srcH, c.method, c.reqW, c.reqH, w, h, c.w, c.h)
		}
	}
}

func TestGenerateFormats(t *testing.T) {
	lim := thumbnail.Limits{MaxPixels: 10_000_000, MaxAnimatedWork: 10_000_000}
	cases := []struct {
		name     string
		data     []byte
		animated bool
		wantType string
		wantAnim bool
	}{
		{"jpeg", testimg.JPEG(400, 300), false, "image/jpeg", false},
		{"png", testimg.PNG(400, 300), false, "image/png", false},
		{"gif still", testimg.GIF(400, 300, 3), false, "image/png", false},
		{"gif animated", testimg.GIF(400, 300, 3), true, "image/gif", true},
		{"webp", testimg.WebP(400, 300, color.NRGBA{1, 2, 3, 255}), false, "image/png", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res, err := thumbnail.Generate(bytes.NewReader(c.data), 64, 64, thumbnail.Scale, c.animated, lim)
			if err != nil {
				t.Fatal(err)
			}
			if res.ContentType != c.wantType || res.Width != 64 || res.Height != 48 || res.Animated != c.wantAnim {
				t.Fatalf("got %s %dx%d animated=%v", res.ContentType, res.Width, res.Height, res.Animated)
			}
			cfg, _, err := image.DecodeConfig(bytes.NewReader(res.Data))
			if err != nil || cfg.Width != 64 || cfg.Height != 48 {
				t.Fatalf("encoded thumbnail is %dx%d (%v)", cfg.Width, cfg.Height, err)
			}
			if c.wantAnim {
				g, err := gif.DecodeAll(bytes.NewReader(res.Data))
				if err != nil || len(g.Image) != 3 {
					t.Fatalf("animated thumbnail: %v frames, %v", len(g.Image), err)
				}
			}
		})
	}
}

func TestGenerateRefuses(t *testing.T) {
	if _, err := thumbnail.Generate(bytes.NewReader([]byte("%PDF-1.7 not an image")), 32, 32, thumbnail.Crop, false, thumbnail.Limits{}); !errors.Is(err, thumbnail.ErrUnsupported) {
		t.Fatalf("pdf: got %v, want ErrUnsupported", err)
	}
	_, err := thumbnail.Generate(bytes.NewReader(testimg.PNG(200, 200)), 32, 32, thumbnail.Crop, false, thumbnail.Limits{MaxPixels: 39999})
	if !errors.Is(err, thumbnail.ErrTooLarge) {
		t.Fatalf("too many pixels: got %v, want ErrTooLarge", err)
	}
	// Too many frames for an animated thumbnail: a still one is made instead.
	res, err := thumbnail.Generate(bytes.NewReader(testimg.GIF(100, 100, 5)), 32, 32, thumbnail.Crop, true, thumbnail.Limits{MaxAnimatedWork: 100 * 100 * 4})
	if err != nil || res.Animated || res.ContentType != "image/png" {
		t.Fatalf("got %+v, %v; want a still PNG", res, err)
	}
}

func TestCropKeepsCentre(t *testing.T) {
	// Left third red, middle green, right third blue: a square crop is all green.
	img := image.NewRGBA(image.Rect(0, 0, 300, 100))
	for y := 0; y < 100; y++ {
		for x := 0; x < 300; x++ {
			c := color.RGBA{0, 255, 0, 255}
			if x < 100 {
				c = color.RGBA{255, 0, 0, 255}
			} else if x >= 200 {
				c = color.RGBA{0, 0, 255, 255}
			}
			img.Set(x, y, c)
		}
	}
	var buf bytes.Buffer
	if err := pngEncode(&buf, img); err != nil {
		t.Fatal(err)
	}
	res, err := thumbnail.Generate(bytes.NewReader(buf.Bytes()), 20, 20, thumbnail.Crop, false, thumbnail.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	out, _, err := image.Decode(bytes.NewReader(res.Data))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []image.Point{{1, 1}, {18, 18}, {10, 10}} {
		r, g, b, _ := out.At(p.X, p.Y).RGBA()
		if r > 0x2000 || b > 0x2000 || g < 0xe000 {
			t.Fatalf("pixel %v is %x,%x,%x: crop is not centred", p, r, g, b)
		}
	}
}

// TestAnimatedFrameBudget: a GIF of many frames is counted before any frame
// is decoded, and over the budget only the first frame is decoded.
func TestAnimatedFrameBudget(t *testing.T) {
	data := testimg.GIF(50, 40, 30)
	lim := thumbnail.Limits{MaxAnimatedWork: 50 * 40 * 30}
	src, err := thumbnail.Decode(bytes.NewReader(data), true, lim)
	if err != nil {
		t.Fatal(err)
	}
	res, err := src.Thumbnail(25, 20, thumbnail.Scale, true)
	if err != nil || !res.Animated {
		t.Fatalf("within budget: %+v %v", res, err)
	}
	g, _ := gif.DecodeAll(bytes.NewReader(res.Data))
	if len(g.Image) != 30 {
		t.Fatalf("%d frames, want 30", len(g.Image))
	}
	lim.MaxAnimatedWork--
	src, err = thumbnail.Decode(bytes.NewReader(data), true, lim)
	if err != nil {
		t.Fatal(err)
	}
	if res, err := src.Thumbnail(25, 20, thumbnail.Scale, true); err != nil || res.Animated {
		t.Fatalf("over budget: %+v %v", res, err)
	}
	// Truncated data is refused cleanly.
	if _, err := thumbnail.Decode(bytes.NewReader(data[:len(data)/2]), true, thumbnail.Limits{}); !errors.Is(err, thumbnail.ErrUnsupported) {
		t.Fatalf("truncated gif: %v", err)
	}
	png := testimg.PNG(400, 300)
	if _, err := thumbnail.Decode(bytes.NewReader(png[:len(png)/2]), false, thumbnail.Limits{}); !errors.Is(err, thumbnail.ErrUnsupported) {
		t.Fatalf("truncated png: %v", err)
	}
}
