//! `jarvis-kiosk devices`: every input and output device with the configs it supports, so a
//! technician can pick `audio.input_device` / `audio.output_device` and the overrides.

use std::fmt;

use cpal::traits::{DeviceTrait, HostTrait};
use serde::Serialize;

use super::device::{self, DeviceError, summarize};

/// One direction of a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Capabilities {
    /// What the stream opens with when no override is set, e.g. `f32 48000 Hz 2 ch`.
    pub default: Option<String>,
    /// Supported formats, channel counts and rates, condensed.
    pub supported: String,
}

/// A device as the technician matches it in the config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceInfo {
    /// Name and id; `audio.*_device` matches any substring of it (case-insensitive).
    pub name: String,
    pub input: Option<Capabilities>,
    pub output: Option<Capabilities>,
}

/// Everything the audio host sees.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SoundCardList {
    pub host: String,
    pub default_input: Option<String>,
    pub default_output: Option<String>,
    pub devices: Vec<DeviceInfo>,
}

fn default_text(c: Result<cpal::SupportedStreamConfig, cpal::Error>) -> Option<String> {
    c.ok().map(|c| {
        format!(
            "{} {} Hz {} ch",
            c.sample_format(),
            c.sample_rate(),
            c.channels()
        )
    })
}

/// Lists the devices of the default host (ALSA on Linux).
pub fn list() -> Result<SoundCardList, DeviceError> {
    let _alsa = super::alsa_messages::AlsaMessages::capture();
    let host = cpal::default_host();
    let devices = host.devices().map_err(|source| DeviceError::Backend {
        dir: "any",
        device: host.id().name().to_owned(),
        source,
    })?;
    let mut out = Vec::new();
    for d in devices {
        let input = d
            .supported_input_configs()
            .ok()
            .map(|r| r.collect::<Vec<_>>());
        let output = d
            .supported_output_configs()
            .ok()
            .map(|r| r.collect::<Vec<_>>());
        let input = input.filter(|r| !r.is_empty()).map(|r| Capabilities {
            default: default_text(d.default_input_config()),
            supported: summarize(&r),
        });
        let output = output.filter(|r| !r.is_empty()).map(|r| Capabilities {
            default: default_text(d.default_output_config()),
            supported: summarize(&r),
        });
        out.push(DeviceInfo {
            name: device::device_name(&d),
            input,
            output,
        });
    }
    Ok(SoundCardList {
        host: host.id().name().to_owned(),
        default_input: host.default_input_device().map(|d| device::device_name(&d)),
        default_output: host
            .default_output_device()
            .map(|d| device::device_name(&d)),
        devices: out,
    })
}

impl fmt::Display for SoundCardList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "audio host: {}", self.host)?;
        let none = "none".to_string();
        writeln!(
            f,
            "default input:  {}",
            self.default_input.as_ref().unwrap_or(&none)
        )?;
        writeln!(
            f,
            "default output: {}",
            self.default_output.as_ref().unwrap_or(&none)
        )?;
        if self.devices.is_empty() {
            writeln!(
                f,
                "no audio devices found (is the sound card plugged in? is the user in the `audio` group?)"
            )?;
        }
        for d in &self.devices {
            writeln!(f, "\n{}", d.name)?;
            for (label, caps) in [("input ", &d.input), ("output", &d.output)] {
                if let Some(c) = caps {
                    let default = c.default.as_deref().unwrap_or("no default");
                    writeln!(f, "  {label}  default {default}")?;
                    writeln!(f, "          supports {}", c.supported)?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_a_list() {
        let list = SoundCardList {
            host: "ALSA".into(),
            default_input: Some("USB mic (alsa:hw:1)".into()),
            default_output: None,
            devices: vec![DeviceInfo {
                name: "USB mic (alsa:hw:1)".into(),
                input: Some(Capabilities {
                    default: Some("i16 48000 Hz 1 ch".into()),
                    supported: "i16 1 ch 16000-48000 Hz".into(),
                }),
                output: None,
            }],
        };
        let text = list.to_string();
        assert!(text.contains("default output: none"), "{text}");
        assert!(text.contains("USB mic (alsa:hw:1)\n  input   default i16 48000 Hz 1 ch\n          supports i16 1 ch 16000-48000 Hz"), "{text}");
        let empty = SoundCardList {
            devices: vec![],
            ..list
        };
        assert!(empty.to_string().contains("no audio devices found"));
    }
}
