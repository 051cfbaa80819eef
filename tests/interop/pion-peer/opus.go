package main

// #cgo pkg-config: opus
// #include <opus.h>
import "C"

import (
	"fmt"
	"unsafe"
)

// sampleRate is the RTP clock and the codec rate; frameSamples is one 20 ms frame.
const (
	sampleRate   = 48000
	frameSamples = 960
)

// opusSilence is the 20 ms Opus silence frame browsers and Pion-based servers send between replies.
var opusSilence = []byte{0xf8, 0xff, 0xfe}

// encodeFrames turns 48 kHz mono PCM into 20 ms Opus frames with Debian's libopus.
func encodeFrames(pcm []int16) ([][]byte, error) {
	var e C.int
	enc := C.opus_encoder_create(sampleRate, 1, C.OPUS_APPLICATION_VOIP, &e)
	if e != C.OPUS_OK {
		return nil, fmt.Errorf("opus_encoder_create: %d", int(e))
	}
	defer C.opus_encoder_destroy(enc)
	var frames [][]byte
	buf := make([]byte, 1500)
	frame := make([]int16, frameSamples)
	for start := 0; start < len(pcm); start += frameSamples {
		for i := range frame {
			frame[i] = 0
		}
		copy(frame, pcm[start:])
		n := C.opus_encode(enc, (*C.opus_int16)(unsafe.Pointer(&frame[0])), frameSamples,
			(*C.uchar)(unsafe.Pointer(&buf[0])), C.opus_int32(len(buf)))
		if n < 0 {
			return nil, fmt.Errorf("opus_encode: %d", int(n))
		}
		frames = append(frames, append([]byte(nil), buf[:n]...))
	}
	return frames, nil
}

// decoder decodes the kiosk's Opus packets to 48 kHz mono PCM.
type decoder struct{ d *C.OpusDecoder }

func newDecoder() (*decoder, error) {
	var e C.int
	d := C.opus_decoder_create(sampleRate, 1, &e)
	if e != C.OPUS_OK {
		return nil, fmt.Errorf("opus_decoder_create: %d", int(e))
	}
	return &decoder{d}, nil
}

func (d *decoder) decode(payload []byte) ([]int16, error) {
	out := make([]int16, 5760)
	var data *C.uchar
	if len(payload) > 0 {
		data = (*C.uchar)(unsafe.Pointer(&payload[0]))
	}
	n := C.opus_decode(d.d, data, C.opus_int32(len(payload)),
		(*C.opus_int16)(unsafe.Pointer(&out[0])), C.int(len(out)), 0)
	if n < 0 {
		return nil, fmt.Errorf("opus_decode: %d", int(n))
	}
	return out[:n], nil
}
