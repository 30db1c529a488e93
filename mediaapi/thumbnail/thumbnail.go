// Package thumbnail makes thumbnails of JPEG, PNG, GIF and WebP images in
// pure Go, with the spec's two methods (client-server API, "Thumbnails"):
// "scale" keeps the aspect ratio and fits the image inside the requested box,
// "crop" fills the requested box (centre crop). Images are never upscaled.
package thumbnail

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color/palette"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"

	"golang.org/x/image/draw"
	_ "golang.org/x/image/webp" // registers WebP decoding (still images, first frame)
)

// Methods of the spec.
const (
	Scale = "scale"
	Crop  = "crop"
)

var (
	// ErrUnsupported is returned for content that is not an image Parley can decode.
	ErrUnsupported = errors.New("cannot thumbnail this content")
	// ErrTooLarge is returned when the image has more pixels than allowed.
	ErrTooLarge = errors.New("image too large to thumbnail")
)

// Limits bound the work one thumbnail may take.
type Limits struct {
	// MaxPixels is the largest source image (width × height) decoded.
	MaxPixels int64
	// MaxAnimatedWork bounds frames × source pixels for an animated thumbnail;
	// above it the first frame is used.
	MaxAnimatedWork int64
}

// Result is an encoded thumbnail.
type Result struct {
	Data        []byte
	ContentType string
	Width       int
	Height      int
	Animated    bool
}

// Dimensions returns the size of the thumbnail of a srcW×srcH image for a
// request of reqW×reqH with method.
func Dimensions(srcW, srcH, reqW, reqH int, method string) (int, int) {
	if srcW <= 0 || srcH <= 0 || reqW <= 0 || reqH <= 0 {
		return 0, 0
	}
	if method == Crop {
		// The box keeps the requested aspect, shrunk until it fits in the source.
		f := min(1, float64(srcW)/float64(reqW), float64(srcH)/float64(reqH))
		return max(1, int(float64(reqW)*f)), max(1, int(float64(reqH)*f))
	}
	var w, h int
	if int64(reqW)*int64(srcH) <= int64(reqH)*int64(srcW) {
		w, h = reqW, max(1, int((int64(reqW)*int64(srcH)+int64(srcW)/2)/int64(srcW)))
	} else {
		w, h = max(1, int((int64(reqH)*int64(srcW)+int64(srcH)/2)/int64(srcH))), reqH
	}
	if w >= srcW || h >= srcH {
		return srcW, srcH
	}
	return w, h
}

// cropRect is the centred part of a srcW×srcH image with the aspect of w×h.
func cropRect(b image.Rectangle, w, h int) image.Rectangle {
	sw, sh := b.Dx(), b.Dy()
	if int64(sw)*int64(h) > int64(sh)*int64(w) {
		cw := int(int64(sh) * int64(w) / int64(h))
		x0 := b.Min.X + (sw-cw)/2
		return image.Rect(x0, b.Min.Y, x0+cw, b.Max.Y)
	}
	ch := int(int64(sw) * int64(h) / int64(w))
	y0 := b.Min.Y + (sh-ch)/2
	return image.Rect(b.Min.X, y0, b.Max.X, y0+ch)
}

// Source is a decoded image ready to be thumbnailed at several sizes.
type Source struct {
	img    image.Image
	format string
	anim   *gif.GIF // set for animated GIFs decoded with animation
	// halves[i] is img reduced 2^(i+1) times in each dimension, made on
	// demand: big photos are halved (a 2×2 box filter) down to within
	// twice the thumbnail size before the slower high-quality resampling.
	halves []*image.RGBA
}

// level returns the image reduced 2^n times (n = 0 is the original).
func (s *Source) level(n int) image.Image {
	for len(s.halves) < n {
		prev := s.img
		if len(s.halves) > 0 {
			prev = s.halves[len(s.halves)-1]
		}
		b := prev.Bounds()
		dst := image.NewRGBA(image.Rect(0, 0, b.Dx()/2, b.Dy()/2))
		// At exactly half size the bilinear sample points fall between 2×2 pixel blocks: a box filter.
		draw.ApproxBiLinear.Scale(dst, dst.Bounds(), prev, image.Rect(b.Min.X, b.Min.Y, b.Min.X+dst.Rect.Dx()*2, b.Min.Y+dst.Rect.Dy()*2), draw.Src, nil)
		s.halves = append(s.halves, dst)
	}
	if n == 0 {
		return s.img
	}
	return s.halves[n-1]
}

// still resizes the srcRect part of the image to w×h, starting from the
// smallest halved level still at least twice the target size.
func (s *Source) still(srcRect image.Rectangle, w, h int) *image.RGBA {
	n := 0
	for srcRect.Dx()>>(n+1) >= 2*w && srcRect.Dy()>>(n+1) >= 2*h {
		n++
	}
	img := s.level(n)
	if n > 0 {
		o := s.img.Bounds().Min
		r := srcRect.Sub(o)
		srcRect = image.Rect(r.Min.X>>n, r.Min.Y>>n, r.Max.X>>n, r.Max.Y>>n).Intersect(img.Bounds())
	}
	return resize(img, srcRect, w, h, draw.CatmullRom)
}

// Size returns the image's width and height.
func (s *Source) Size() (int, int) {
	if s.anim != nil {
		return s.anim.Config.Width, s.anim.Config.Height
	}
	b := s.img.Bounds()
	return b.Dx(), b.Dy()
}

// Decode reads an image for thumbnailing. The format is found from the
// content itself, not from a claimed content type. With animated set, every
// frame of an animated GIF is kept when that is cheap enough
// (lim.MaxAnimatedWork, checked by walking the GIF's blocks before decoding
// any frame, so a small file cannot make the decoder allocate without bound).
func Decode(r io.ReadSeeker, animated bool, lim Limits) (*Source, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, _ := br.Peek(64 << 10)
	cfg, format, err := image.DecodeConfig(bytes.NewReader(head))
	if err != nil {
		return nil, ErrUnsupported
	}
	switch format {
	case "jpeg", "png", "gif", "webp":
	default:
		return nil, ErrUnsupported
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return nil, ErrUnsupported
	}
	if lim.MaxPixels > 0 && int64(cfg.Width)*int64(cfg.Height) > lim.MaxPixels {
		return nil, ErrTooLarge
	}
	if format == "gif" && animated {
		frames, err := gifFrames(br, int64(cfg.Width)*int64(cfg.Height), lim.MaxAnimatedWork)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrUnsupported, err)
		}
		if _, err := r.Seek(0, io.SeekStart); err != nil {
			return nil, err
		}
		br.Reset(r)
		if frames > 1 {
			g, err := gif.DecodeAll(br)
			if err != nil || len(g.Image) == 0 {
				return nil, ErrUnsupported
			}
			return &Source{img: firstFrame(g), format: format, anim: g}, nil
		}
	}
	img, _, err := image.Decode(br)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnsupported, err)
	}
	return &Source{img: img, format: format}, nil
}

// firstFrame is the first frame of g drawn on the full canvas (a frame may cover part of it).
func firstFrame(g *gif.GIF) image.Image {
	fr := g.Image[0]
	canvas := image.Rect(0, 0, g.Config.Width, g.Config.Height)
	if fr.Bounds() == canvas {
		return fr
	}
	img := image.NewRGBA(canvas)
	draw.Draw(img, fr.Bounds(), fr, fr.Bounds().Min, draw.Src)
	return img
}

// gifFrames counts the frames of a GIF by walking its blocks without
// decompressing them. It stops counting (returning 0: treat as still) once
// frames × pixels would exceed maxWork (when maxWork > 0).
func gifFrames(r *bufio.Reader, pixels, maxWork int64) (int, error) {
	hdr := make([]byte, 13)
	if _, err := io.ReadFull(r, hdr); err != nil {
		return 0, err
	}
	skipTable := func(flags byte) error {
		if flags&0x80 == 0 {
			return nil
		}
		_, err := r.Discard(3 << ((flags & 7) + 1))
		return err
	}
	skipSubBlocks := func() error {
		for {
			n, err := r.ReadByte()
			if err != nil || n == 0 {
				return err
			}
			if _, err := r.Discard(int(n)); err != nil {
				return err
			}
		}
	}
	if err := skipTable(hdr[10]); err != nil {
		return 0, err
	}
	frames := 0
	for {
		b, err := r.ReadByte()
		if err != nil {
			return frames, nil // a truncated file: the decoder will say what it can show
		}
		switch b {
		case 0x21: // extension: label, then sub-blocks
			if _, err := r.ReadByte(); err != nil {
				return frames, nil
			}
			if err := skipSubBlocks(); err != nil {
				return frames, nil
			}
		case 0x2c: // image descriptor, local colour table, LZW code size, data
			desc := make([]byte, 9)
			if _, err := io.ReadFull(r, desc); err != nil {
				return frames, nil
			}
			if err := skipTable(desc[8]); err != nil {
				return frames, nil
			}
			if _, err := r.ReadByte(); err != nil {
				return frames, nil
			}
			if err := skipSubBlocks(); err != nil {
				return frames, nil
			}
			frames++
			if maxWork > 0 && int64(frames)*pixels > maxWork {
				return 0, nil
			}
		case 0x3b: // trailer
			return frames, nil
		default:
			return frames, nil
		}
	}
}

// Thumbnail encodes a thumbnail for a reqW×reqH request with method. JPEG
// sources give JPEG thumbnails, others PNG (keeping transparency); animated
// requests of an animated GIF decoded with animation give an animated GIF.
func (s *Source) Thumbnail(reqW, reqH int, method string, animated bool) (*Result, error) {
	w, h := s.Size()
	tw, th := Dimensions(w, h, reqW, reqH, method)
	if animated && s.anim != nil {
		return animatedGIF(s.anim, tw, th, method)
	}
	return encodeStill(s.still(sourceRect(s.img.Bounds(), tw, th, method), tw, th), s.format)
}

// Generate decodes r and makes one thumbnail of it.
func Generate(r io.ReadSeeker, reqW, reqH int, method string, animated bool, lim Limits) (*Result, error) {
	src, err := Decode(r, animated, lim)
	if err != nil {
		return nil, err
	}
	return src.Thumbnail(reqW, reqH, method, animated)
}

func resize(src image.Image, srcRect image.Rectangle, w, h int, k draw.Interpolator) *image.RGBA {
	dst := image.NewRGBA(image.Rect(0, 0, w, h))
	k.Scale(dst, dst.Bounds(), src, srcRect, draw.Src, nil)
	return dst
}

func sourceRect(b image.Rectangle, w, h int, method string) image.Rectangle {
	if method == Crop {
		return cropRect(b, w, h)
	}
	return b
}

func encodeStill(dst *image.RGBA, format string) (*Result, error) {
	var buf bytes.Buffer
	res := &Result{Width: dst.Rect.Dx(), Height: dst.Rect.Dy()}
	if format == "jpeg" {
		if err := jpeg.Encode(&buf, dst, &jpeg.Options{Quality: 80}); err != nil {
			return nil, err
		}
		res.ContentType = "image/jpeg"
	} else {
		enc := png.Encoder{CompressionLevel: png.BestSpeed}
		if err := enc.Encode(&buf, dst); err != nil {
			return nil, err
		}
		res.ContentType = "image/png"
	}
	res.Data = buf.Bytes()
	return res, nil
}

// animatedGIF composes each frame onto the canvas (GIF frames may cover part
// of it and have disposal methods), scales the canvas and re-palettes it.
func animatedGIF(g *gif.GIF, w, h int, method string) (*Result, error) {
	canvasRect := image.Rect(0, 0, g.Config.Width, g.Config.Height)
	canvas := image.NewRGBA(canvasRect)
	out := &gif.GIF{LoopCount: g.LoopCount, Config: image.Config{Width: w, Height: h}}
	srcRect := sourceRect(canvasRect, w, h, method)
	for i, fr := range g.Image {
		disposal := byte(0)
		if i < len(g.Disposal) {
			disposal = g.Disposal[i]
		}
		var saved *image.RGBA
		if disposal == gif.DisposalPrevious {
			saved = image.NewRGBA(canvasRect)
			draw.Copy(saved, image.Point{}, canvas, canvasRect, draw.Src, nil)
		}
		draw.Draw(canvas, fr.Bounds(), fr, fr.Bounds().Min, draw.Over)
		scaled := resize(canvas, srcRect, w, h, draw.BiLinear)
		pal := fr.Palette
		if len(pal) == 0 {
			pal = palette.Plan9
		}
		pm := image.NewPaletted(scaled.Bounds(), pal)
		draw.Draw(pm, pm.Bounds(), scaled, image.Point{}, draw.Src)
		out.Image = append(out.Image, pm)
		delay := 0
		if i < len(g.Delay) {
			delay = g.Delay[i]
		}
		out.Delay = append(out.Delay, delay)
		out.Disposal = append(out.Disposal, gif.DisposalNone)
		switch disposal {
		case gif.DisposalBackground:
			draw.Draw(canvas, fr.Bounds(), image.Transparent, image.Point{}, draw.Src)
		case gif.DisposalPrevious:
			canvas = saved
		}
	}
	var buf bytes.Buffer
	if err := gif.EncodeAll(&buf, out); err != nil {
		return nil, err
	}
	return &Result{Data: buf.Bytes(), ContentType: "image/gif", Width: w, Height: h, Animated: true}, nil
}

// IsImage reports whether the content starts like an image Generate can
// decode, and its size.
func IsImage(head []byte) (w, h int, ok bool) {
	cfg, format, err := image.DecodeConfig(bytes.NewReader(head))
	if err != nil {
		return 0, 0, false
	}
	switch format {
	case "jpeg", "png", "gif", "webp":
		return cfg.Width, cfg.Height, true
	}
	return 0, 0, false
}
