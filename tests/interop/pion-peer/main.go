// pion-peer stands in for OpenAI's Realtime server with an independent WebRTC stack (Pion, the
// stack OpenAI's media servers are built on), for the kiosk's interop test.
//
// It answers as OpenAI does: a=setup:active, host candidates only, Opus, audio packets all the
// call long (Opus silence between replies, marker bit set by Pion's sample writer), and the
// `oai-events` channel the kiosk opens. It serves the client-secret, call and hangup endpoints
// and plays a fixed conversation: greeting, two member turns found by an energy VAD on the
// decoded member audio, the second reply calling `end_session`, then the goodbye.
//
// Prints "listening on http://ADDR/v1" once ready. GET /interop/state returns what a test
// asserts on (data channel stream id, answer SDP, timeline); at hangup the decoded member audio
// is written to OUT/member.pcm (S16_LE mono 48 kHz).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pion/ice/v2"
	"github.com/pion/webrtc/v3"
	"github.com/pion/webrtc/v3/pkg/media"
)

// reply is one scripted response: a tone, its transcript and the usage billed for it.
type reply struct {
	transcript string
	toneHz     float64
	ms         int
	usage      map[string]int
	endSession bool
}

// The conversation; the Rust test prices these usages independently.
var (
	greeting = reply{"Bonjour, bienvenue !", 520, 1000, usage(80, 0, 0, 6, 25), false}
	turns    = []reply{
		{"Bonjour ! Voici votre programme du jour.", 440, 2000, usage(100, 20, 0, 5, 40), false},
		{"Au revoir, bonne séance !", 660, 800, usage(150, 30, 100, 5, 30), true},
	}
	goodbye          = reply{"À bientôt !", 330, 600, usage(170, 0, 150, 4, 20), false}
	userTranscripts  = []string{"Bonjour JARVIS", "Merci, au revoir"}
	transcriptionUse = map[string]interface{}{"type": "tokens", "total_tokens": 24, "input_tokens": 20,
		"input_token_details": map[string]int{"text_tokens": 0, "audio_tokens": 20}, "output_tokens": 4}
)

func usage(inText, inAudio, cachedText, outText, outAudio int) map[string]int {
	return map[string]int{"input_text": inText, "input_audio": inAudio, "cached_text": cachedText,
		"output_text": outText, "output_audio": outAudio}
}

func usageJSON(u map[string]int) map[string]interface{} {
	in, out := u["input_text"]+u["input_audio"], u["output_text"]+u["output_audio"]
	return map[string]interface{}{
		"total_tokens": in + out, "input_tokens": in, "output_tokens": out,
		"input_token_details": map[string]interface{}{
			"text_tokens": u["input_text"], "audio_tokens": u["input_audio"], "image_tokens": 0,
			"cached_tokens":         u["cached_text"],
			"cached_tokens_details": map[string]int{"text_tokens": u["cached_text"], "audio_tokens": 0, "image_tokens": 0},
		},
		"output_token_details": map[string]int{"text_tokens": u["output_text"], "audio_tokens": u["output_audio"]},
	}
}

func tone(hz float64, ms int) []int16 {
	n := sampleRate * ms / 1000
	pcm := make([]int16, n)
	for i := range pcm {
		pcm[i] = int16(math.Sin(2*math.Pi*hz*float64(i)/sampleRate) * 0.3 * 32767)
	}
	return pcm
}

// vad is the energy detector standing in for server_vad: speech after 60 ms of frames above
// -40 dBFS, end after 500 ms below.
type vad struct {
	speaking bool
	runMs    int
	atMs     int
}

func levelDbfs(pcm []int16) float64 {
	if len(pcm) == 0 {
		return -120
	}
	var sum float64
	for _, s := range pcm {
		sum += float64(s) * float64(s)
	}
	rms := math.Sqrt(sum/float64(len(pcm))) / 32768
	if rms < 1e-6 {
		return -120
	}
	return 20 * math.Log10(rms)
}

// push returns "started", "stopped" or "".
func (v *vad) push(pcm []int16) string {
	ms := len(pcm) * 1000 / sampleRate
	v.atMs += ms
	if (levelDbfs(pcm) > -40) == v.speaking {
		v.runMs = 0
		return ""
	}
	v.runMs += ms
	need := 60
	if v.speaking {
		need = 500
	}
	if v.runMs < need {
		return ""
	}
	v.runMs = 0
	v.speaking = !v.speaking
	if v.speaking {
		return "started"
	}
	return "stopped"
}

type entry struct {
	AtMs   int64  `json:"at_ms"`
	Event  string `json:"event"`
	Detail string `json:"detail,omitempty"`
}

// peer is the one call this server handles.
type peer struct {
	mu         sync.Mutex
	tcpMux     ice.TCPMux // set by -tcp-only: answers carry only a passive ICE-TCP candidate
	out        string
	start      time.Time
	pc         *webrtc.PeerConnection
	dc         *webrtc.DataChannel
	track      *webrtc.TrackLocalStaticSample
	answerSDP  string
	streamID   int
	label      string
	timeline   []entry
	memberPCM  []int16
	vad        vad
	seq        int
	nextTurn   int
	userItem   string
	greeted    bool
	goodbyeDue bool
	pendingFn  string
	queue      []queued
	hungUp     bool
	packetsOut int
}

type queued struct {
	responseID string
	frames     [][]byte
}

func (p *peer) note(event, detail string) {
	p.timeline = append(p.timeline, entry{time.Since(p.start).Milliseconds(), event, detail})
}

func (p *peer) id(prefix string) string {
	p.seq++
	return fmt.Sprintf("%s_PION%06d", prefix, p.seq)
}

// send emits one server event; called with p.mu held.
func (p *peer) send(ev map[string]interface{}) {
	ev["event_id"] = p.id("event")
	b, _ := json.Marshal(ev)
	if p.dc == nil {
		return
	}
	if err := p.dc.SendText(string(b)); err != nil {
		log.Printf("send %v: %v", ev["type"], err)
	}
	p.note("sent", ev["type"].(string))
}

func (p *peer) onMessage(text string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var msg map[string]interface{}
	if err := json.Unmarshal([]byte(text), &msg); err != nil {
		p.send(map[string]interface{}{"type": "error", "error": map[string]interface{}{
			"type": "invalid_request_error", "code": "invalid_event", "message": "not JSON"}})
		return
	}
	kind, _ := msg["type"].(string)
	p.note("received", kind)
	switch kind {
	case "session.update":
		p.send(map[string]interface{}{"type": "session.updated", "session": msg["session"]})
	case "conversation.item.create":
		item, _ := msg["item"].(map[string]interface{})
		if item["type"] == "function_call_output" && item["call_id"] == p.pendingFn {
			p.goodbyeDue = true
		}
		item["id"] = p.id("item")
		item["status"] = "completed"
		p.send(map[string]interface{}{"type": "conversation.item.added", "item": item})
		p.send(map[string]interface{}{"type": "conversation.item.done", "item": item})
	case "response.create":
		switch {
		case p.goodbyeDue:
			p.goodbyeDue = false
			p.respond(goodbye)
		case !p.greeted:
			p.greeted = true
			p.respond(greeting)
		default:
			p.send(map[string]interface{}{"type": "error", "error": map[string]interface{}{
				"type": "invalid_request_error", "code": "unscripted", "message": "no reply scripted"}})
		}
	}
}

// respond emits a response's events (generation is instant, as on a fast server) and queues its
// audio; output_audio_buffer.stopped follows when the audio has been sent.
func (p *peer) respond(r reply) {
	rid, itemID := p.id("resp"), p.id("item")
	frames, err := encodeFrames(tone(r.toneHz, r.ms))
	if err != nil {
		log.Fatal(err)
	}
	p.note("response", fmt.Sprintf("%s %d frames", rid, len(frames)))
	msg := func(status string) map[string]interface{} {
		return map[string]interface{}{"id": itemID, "type": "message", "status": status, "role": "assistant",
			"content": []interface{}{map[string]string{"type": "output_audio", "transcript": r.transcript}}}
	}
	p.send(map[string]interface{}{"type": "response.created", "response": map[string]interface{}{
		"object": "realtime.response", "id": rid, "status": "in_progress", "output": []interface{}{}, "usage": nil}})
	p.send(map[string]interface{}{"type": "response.output_item.added", "response_id": rid, "output_index": 0, "item": msg("in_progress")})
	p.send(map[string]interface{}{"type": "output_audio_buffer.started", "response_id": rid})
	p.queue = append(p.queue, queued{rid, frames})
	p.send(map[string]interface{}{"type": "response.output_audio_transcript.delta", "response_id": rid,
		"item_id": itemID, "output_index": 0, "content_index": 0, "delta": r.transcript})
	p.send(map[string]interface{}{"type": "response.output_audio_transcript.done", "response_id": rid,
		"item_id": itemID, "output_index": 0, "content_index": 0, "transcript": r.transcript})
	p.send(map[string]interface{}{"type": "response.output_item.done", "response_id": rid, "output_index": 0, "item": msg("completed")})
	output := []interface{}{msg("completed")}
	if r.endSession {
		callID, fcID := p.id("call"), p.id("item")
		args := `{"reason":"user_said_goodbye"}`
		fc := map[string]interface{}{"id": fcID, "type": "function_call", "status": "completed",
			"name": "end_session", "call_id": callID, "arguments": args}
		p.send(map[string]interface{}{"type": "response.function_call_arguments.done", "response_id": rid,
			"item_id": fcID, "output_index": 1, "call_id": callID, "name": "end_session", "arguments": args})
		p.send(map[string]interface{}{"type": "response.output_item.done", "response_id": rid, "output_index": 1, "item": fc})
		output = append(output, fc)
		p.pendingFn = callID
	}
	p.send(map[string]interface{}{"type": "response.done", "response": map[string]interface{}{
		"object": "realtime.response", "id": rid, "status": "completed", "status_details": nil,
		"output": output, "conversation_id": "conv_PION", "output_modalities": []string{"audio"},
		"usage": usageJSON(r.usage)}})
}

// onMemberAudio feeds one decoded member frame to the VAD and plays the turns.
func (p *peer) onMemberAudio(pcm []int16) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.memberPCM = append(p.memberPCM, pcm...)
	switch p.vad.push(pcm) {
	case "started":
		if p.nextTurn >= len(turns) {
			return
		}
		p.userItem = p.id("item")
		p.note("speech_started", fmt.Sprintf("playing=%v", len(p.queue) > 0))
		p.send(map[string]interface{}{"type": "input_audio_buffer.speech_started",
			"audio_start_ms": p.vad.atMs - 60, "item_id": p.userItem})
	case "stopped":
		if p.userItem == "" {
			return
		}
		item, turn := p.userItem, p.nextTurn
		p.userItem, p.nextTurn = "", p.nextTurn+1
		p.note("speech_stopped", "")
		user := map[string]interface{}{"id": item, "type": "message", "status": "completed", "role": "user",
			"content": []interface{}{map[string]interface{}{"type": "input_audio", "transcript": nil}}}
		p.send(map[string]interface{}{"type": "input_audio_buffer.speech_stopped", "audio_end_ms": p.vad.atMs - 500, "item_id": item})
		p.send(map[string]interface{}{"type": "input_audio_buffer.committed", "item_id": item})
		p.send(map[string]interface{}{"type": "conversation.item.added", "item": user})
		p.send(map[string]interface{}{"type": "conversation.item.done", "item": user})
		completed := map[string]interface{}{"type": "conversation.item.input_audio_transcription.completed",
			"item_id": item, "content_index": 0, "transcript": userTranscripts[turn]}
		if turn == 0 {
			completed["usage"] = transcriptionUse
		}
		p.send(completed)
		p.respond(turns[turn])
	}
}

// pace sends one packet every 20 ms for the whole call: reply frames when a reply is queued,
// the Opus silence frame otherwise.
func (p *peer) pace(done <-chan struct{}) {
	next := time.Now()
	for {
		next = next.Add(20 * time.Millisecond)
		select {
		case <-done:
			return
		case <-time.After(time.Until(next)):
		}
		p.mu.Lock()
		frame := opusSilence
		if len(p.queue) > 0 {
			q := &p.queue[0]
			frame, q.frames = q.frames[0], q.frames[1:]
			if len(q.frames) == 0 {
				rid := q.responseID
				p.queue = p.queue[1:]
				p.send(map[string]interface{}{"type": "output_audio_buffer.stopped", "response_id": rid})
			}
		}
		p.packetsOut++
		track := p.track
		p.mu.Unlock()
		if err := track.WriteSample(media.Sample{Data: frame, Duration: 20 * time.Millisecond}); err != nil {
			log.Printf("write sample: %v", err)
		}
	}
}

func (p *peer) answer(offer string) (string, error) {
	se := webrtc.SettingEngine{}
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	if p.tcpMux != nil {
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeTCP4})
		se.SetICETCPMux(p.tcpMux)
	}
	se.SetIncludeLoopbackCandidate(true)
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	if err := se.SetAnsweringDTLSRole(webrtc.DTLSRoleClient); err != nil {
		return "", err
	}
	m := &webrtc.MediaEngine{}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{
		MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1"},
		PayloadType: 111}, webrtc.RTPCodecTypeAudio); err != nil {
		return "", err
	}
	api := webrtc.NewAPI(webrtc.WithSettingEngine(se), webrtc.WithMediaEngine(m))
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return "", err
	}
	track, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus,
		ClockRate: 48000, Channels: 2}, "audio", "pion-peer")
	if err != nil {
		return "", err
	}
	if _, err = pc.AddTrack(track); err != nil {
		return "", err
	}
	p.pc, p.track = pc, track
	done := make(chan struct{})
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		p.mu.Lock()
		p.note("connection", s.String())
		p.mu.Unlock()
		if s == webrtc.PeerConnectionStateConnected {
			go p.pace(done)
		}
		if s == webrtc.PeerConnectionStateClosed || s == webrtc.PeerConnectionStateFailed {
			select {
			case <-done:
			default:
				close(done)
			}
		}
	})
	pc.OnDataChannel(func(dc *webrtc.DataChannel) {
		p.mu.Lock()
		p.dc, p.label = dc, dc.Label()
		if id := dc.ID(); id != nil {
			p.streamID = int(*id)
		}
		p.note("datachannel", fmt.Sprintf("%s id=%d", p.label, p.streamID))
		p.mu.Unlock()
		dc.OnOpen(func() {
			p.mu.Lock()
			defer p.mu.Unlock()
			p.send(map[string]interface{}{"type": "session.created", "session": map[string]interface{}{
				"type": "realtime", "object": "realtime.session", "id": "sess_PION", "model": "gpt-realtime",
				"expires_at": time.Now().Unix() + 3600}})
		})
		dc.OnMessage(func(m webrtc.DataChannelMessage) { p.onMessage(string(m.Data)) })
	})
	pc.OnTrack(func(t *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		dec, err := newDecoder()
		if err != nil {
			log.Fatal(err)
		}
		for {
			pkt, _, err := t.ReadRTP()
			if err != nil {
				return
			}
			if pcm, err := dec.decode(pkt.Payload); err == nil {
				p.onMemberAudio(pcm)
			}
		}
	})
	if err = pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return "", err
	}
	ans, err := pc.CreateAnswer(nil)
	if err != nil {
		return "", err
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err = pc.SetLocalDescription(ans); err != nil {
		return "", err
	}
	<-gathered
	return pc.LocalDescription().SDP, nil
}

func (p *peer) hangup() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.hungUp {
		return nil
	}
	p.note("hangup", "")
	raw := make([]byte, 2*len(p.memberPCM))
	for i, s := range p.memberPCM {
		raw[2*i], raw[2*i+1] = byte(s), byte(uint16(s)>>8)
	}
	if err := os.WriteFile(filepath.Join(p.out, "member.pcm"), raw, 0o644); err != nil {
		return err
	}
	p.hungUp = true
	if p.pc != nil {
		go p.pc.Close()
	}
	return nil
}

// jsonReply answers with a Content-Length (no chunked encoding: the test's GET is bare).
func jsonReply(w http.ResponseWriter, status int, v interface{}) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = 500, []byte(`{"error":{"message":"encoding failed"}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "HTTP address")
	out := flag.String("out", ".", "directory for member.pcm")
	tcpOnly := flag.Bool("tcp-only", false, "offer only a passive ICE-TCP candidate (a network that blocks UDP)")
	flag.Parse()
	p := &peer{out: *out, start: time.Now(), streamID: -1}
	if *tcpOnly {
		tl, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			log.Fatal(err)
		}
		p.tcpMux = webrtc.NewICETCPMux(nil, tl, 8)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/realtime/client_secrets", func(w http.ResponseWriter, r *http.Request) {
		jsonReply(w, 200, map[string]interface{}{"value": "ek_pion_1", "expires_at": time.Now().Unix() + 600,
			"session": map[string]interface{}{"type": "realtime", "model": "gpt-realtime"}})
	})
	mux.HandleFunc("/v1/realtime/calls", func(w http.ResponseWriter, r *http.Request) {
		offer, err := io.ReadAll(r.Body)
		if err == nil && !strings.HasPrefix(r.Header.Get("Content-Type"), "application/sdp") {
			err = fmt.Errorf("expected Content-Type: application/sdp")
		}
		var sdp string
		if err == nil {
			sdp, err = p.answer(string(offer))
		}
		if err != nil {
			jsonReply(w, 400, map[string]interface{}{"error": map[string]string{"message": err.Error(), "type": "invalid_request_error"}})
			return
		}
		p.mu.Lock()
		p.answerSDP = sdp
		p.mu.Unlock()
		w.Header().Set("Content-Type", "application/sdp")
		w.Header().Set("Location", "/v1/realtime/calls/rtc_PION000001")
		w.WriteHeader(201)
		_, _ = io.WriteString(w, sdp)
	})
	mux.HandleFunc("/v1/realtime/calls/rtc_PION000001/hangup", func(w http.ResponseWriter, r *http.Request) {
		if err := p.hangup(); err != nil {
			jsonReply(w, 500, map[string]interface{}{"error": map[string]string{"message": err.Error()}})
			return
		}
		jsonReply(w, 200, map[string]interface{}{})
	})
	mux.HandleFunc("/interop/state", func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		defer p.mu.Unlock()
		jsonReply(w, 200, map[string]interface{}{"stream_id": p.streamID, "label": p.label,
			"answer_sdp": p.answerSDP, "timeline": p.timeline, "hung_up": p.hungUp,
			"packets_sent": p.packetsOut, "member_samples": len(p.memberPCM)})
	})
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("listening on http://%s/v1\n", ln.Addr())
	log.Fatal(http.Serve(ln, mux))
}
