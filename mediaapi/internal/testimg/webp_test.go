package testimg

import (
	"bytes"
	"image"
	"image/color"
	"testing"

	_ "golang.org/x/image/webp"
)

func TestWebPDecodes(t *testing.T) {
	want := color.NRGBA{10, 200, 30, 255}
	img, format, err := image.Decode(bytes.NewReader(WebP(300, 200, want)))
	if err != nil {
		t.Fatal(err)
	}
	if format != "webp" || img.Bounds() != image.Rect(0, 0, 300, 200) {
		t.Fatalf("got %s %v, want webp 300x200", format, img.Bounds())
	}
	if got := color.NRGBAModel.Convert(img.At(299, 199)); got != want {
		t.Fatalf("pixel %v, want %v", got, want)
	}
}
