//! Audio pipeline: capture, resample, Opus, playback, prompts, echo control.
