//! Finding a device by the configured name and choosing the stream config to open: the device's
//! preferred one, or exactly what the `audio.*` overrides force.

use cpal::traits::{DeviceTrait, HostTrait};
use cpal::{
    BufferSize, SampleFormat, StreamConfig, SupportedBufferSize, SupportedStreamConfig,
    SupportedStreamConfigRange,
};
use thiserror::Error;

use jarvis_config::{AudioConfig, SampleFormat as CfgFormat};

/// Capture or playback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Input,
    Output,
}

impl Direction {
    fn device_key(self) -> &'static str {
        match self {
            Direction::Input => "audio.input_device",
            Direction::Output => "audio.output_device",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Direction::Input => "input",
            Direction::Output => "output",
        }
    }
}

/// Why a stream could not be opened. Each message names the device and the config key to fix.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum DeviceError {
    #[error(
        "no {dir} device matches {key} = {wanted:?} (available: {available}); run `jarvis-kiosk devices`"
    )]
    NotFound {
        dir: &'static str,
        key: &'static str,
        wanted: String,
        available: String,
    },
    #[error("{dir} device {device:?}: {source}")]
    Backend {
        dir: &'static str,
        device: String,
        source: cpal::Error,
    },
    #[error(
        "{dir} device {device:?} does not support {wanted}; it supports {supported} (fix audio.{dir}_* overrides)"
    )]
    Unsupported {
        dir: &'static str,
        device: String,
        wanted: String,
        supported: String,
    },
}

/// The overrides that apply to one direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Overrides {
    pub rate: Option<u32>,
    pub channels: Option<u16>,
    pub format: Option<SampleFormat>,
    pub period: Option<u32>,
}

impl Overrides {
    /// The overrides `cfg` sets for `dir` (`period_frames` applies to both).
    pub fn from_config(cfg: &AudioConfig, dir: Direction) -> Self {
        match dir {
            Direction::Input => Overrides {
                rate: cfg.input_sample_rate,
                channels: cfg.input_channels,
                format: cfg.input_format.map(|f| match f {
                    CfgFormat::I16 => SampleFormat::I16,
                    CfgFormat::F32 => SampleFormat::F32,
                }),
                period: cfg.period_frames,
            },
            Direction::Output => Overrides {
                rate: cfg.output_sample_rate,
                channels: cfg.output_channels,
                format: None,
                period: cfg.period_frames,
            },
        }
    }
}

/// Formats the stream callbacks convert (everything common; 24-bit packed and DSD are not).
pub const HANDLED_FORMATS: [SampleFormat; 8] = [
    SampleFormat::F32,
    SampleFormat::I16,
    SampleFormat::I32,
    SampleFormat::F64,
    SampleFormat::I8,
    SampleFormat::U8,
    SampleFormat::U16,
    SampleFormat::U32,
];

/// A device with the config it will be opened with.
pub struct Chosen {
    pub device: cpal::Device,
    pub name: String,
    pub config: StreamConfig,
    pub format: SampleFormat,
}

/// The name a technician sees (`jarvis-kiosk devices`) and matches with `audio.*_device`.
pub fn device_name(d: &cpal::Device) -> String {
    let id = d.id().map(|i| i.to_string()).unwrap_or_default();
    match d.description() {
        Ok(desc) if !id.is_empty() => format!("{} ({id})", desc.name()),
        Ok(desc) => desc.name().to_owned(),
        Err(_) => id,
    }
}

fn matches(d: &cpal::Device, wanted: &str) -> bool {
    let wanted = wanted.to_lowercase();
    let mut names = vec![device_name(d)];
    if let Ok(desc) = d.description() {
        names.extend(desc.driver().map(str::to_owned));
        names.extend(desc.extended().map(str::to_owned));
    }
    names.iter().any(|n| n.to_lowercase().contains(&wanted))
}

/// Finds the device named by `audio.input_device` / `audio.output_device`.
pub fn find(host: &cpal::Host, wanted: &str, dir: Direction) -> Result<cpal::Device, DeviceError> {
    let backend = |source: cpal::Error| DeviceError::Backend {
        dir: dir.label(),
        device: wanted.to_owned(),
        source,
    };
    let not_found = |available: String| DeviceError::NotFound {
        dir: dir.label(),
        key: dir.device_key(),
        wanted: wanted.to_owned(),
        available,
    };
    if wanted.eq_ignore_ascii_case("default") {
        let d = match dir {
            Direction::Input => host.default_input_device(),
            Direction::Output => host.default_output_device(),
        };
        return d.ok_or_else(|| not_found("no default device".into()));
    }
    let devices: Vec<cpal::Device> = match dir {
        Direction::Input => host.input_devices().map_err(backend)?.collect(),
        Direction::Output => host.output_devices().map_err(backend)?.collect(),
    };
    if let Some(d) = devices.iter().find(|d| matches(d, wanted)) {
        return Ok(d.clone());
    }
    let names: Vec<String> = devices.iter().map(device_name).collect();
    Err(not_found(if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }))
}

/// Finds the device and the config to open for `dir`.
pub fn open_plan(
    host: &cpal::Host,
    cfg: &AudioConfig,
    dir: Direction,
) -> Result<Chosen, DeviceError> {
    let wanted = match dir {
        Direction::Input => &cfg.input_device,
        Direction::Output => &cfg.output_device,
    };
    let device = find(host, wanted, dir)?;
    let name = device_name(&device);
    let backend = |source: cpal::Error| DeviceError::Backend {
        dir: dir.label(),
        device: name.clone(),
        source,
    };
    let (default, ranges): (SupportedStreamConfig, Vec<SupportedStreamConfigRange>) = match dir {
        Direction::Input => (
            device.default_input_config().map_err(backend)?,
            device.supported_input_configs().map_err(backend)?.collect(),
        ),
        Direction::Output => (
            device.default_output_config().map_err(backend)?,
            device
                .supported_output_configs()
                .map_err(backend)?
                .collect(),
        ),
    };
    let (config, format) = choose(&default, &ranges, Overrides::from_config(cfg, dir)).map_err(
        |(wanted, supported)| DeviceError::Unsupported {
            dir: dir.label(),
            device: name.clone(),
            wanted,
            supported,
        },
    )?;
    Ok(Chosen {
        device,
        name,
        config,
        format,
    })
}

/// Picks the stream config: the device default, with each override replacing its part. When
/// the default format is one the callbacks cannot convert, prefer F32 then I16. Errors give
/// (what was wanted, what the device supports) for the message.
pub fn choose(
    default: &SupportedStreamConfig,
    ranges: &[SupportedStreamConfigRange],
    o: Overrides,
) -> Result<(StreamConfig, SampleFormat), (String, String)> {
    let rate = o.rate.unwrap_or(default.sample_rate());
    let channels = o.channels.unwrap_or(default.channels());
    let supports = |f: SampleFormat| {
        ranges.iter().any(|r| {
            r.sample_format() == f
                && r.channels() == channels
                && (r.min_sample_rate()..=r.max_sample_rate()).contains(&rate)
        })
    };
    let format = match o.format {
        Some(f) => f,
        None if HANDLED_FORMATS.contains(&default.sample_format()) => default.sample_format(),
        None => [SampleFormat::F32, SampleFormat::I16]
            .into_iter()
            .find(|f| supports(*f))
            .unwrap_or(default.sample_format()),
    };
    let overridden = o.rate.is_some() || o.channels.is_some() || o.format.is_some();
    let wanted = || format!("{format} {rate} Hz {channels} ch");
    if !HANDLED_FORMATS.contains(&format) {
        return Err((
            wanted(),
            "no format this program converts (use f32 or i16)".into(),
        ));
    }
    if overridden && !ranges.is_empty() && !supports(format) {
        return Err((wanted(), summarize(ranges)));
    }
    let buffer_size = match o.period {
        Some(p) => BufferSize::Fixed(p),
        None => default_period(default.buffer_size(), rate),
    };
    Ok((
        StreamConfig {
            channels,
            sample_rate: rate,
            buffer_size,
        },
        format,
    ))
}

/// Device period the daemon asks for when `audio.period_frames` is unset. cpal keeps two periods
/// in the device, so a barge-in flush is silent at the speaker within about two periods: 10 ms
/// keeps that inside the 60 ms budget where a device's usual 20-25 ms does not.
pub const DEFAULT_PERIOD_MS: u32 = 10;

/// [`DEFAULT_PERIOD_MS`] when the device says it accepts it, else the device's own choice.
fn default_period(supported: &SupportedBufferSize, rate: u32) -> BufferSize {
    let want = rate * DEFAULT_PERIOD_MS / 1000;
    match supported {
        SupportedBufferSize::Range { min, max } if (*min..=*max).contains(&want) => {
            BufferSize::Fixed(want)
        }
        _ => BufferSize::Default,
    }
}

/// Short text of what a device supports: `F32/I16 1-2 ch 8000-48000 Hz; ...`.
pub fn summarize(ranges: &[SupportedStreamConfigRange]) -> String {
    use std::collections::BTreeMap;
    // (rate range) -> format -> channels
    let mut by_rate: BTreeMap<(u32, u32), BTreeMap<String, Vec<u16>>> = BTreeMap::new();
    for r in ranges {
        by_rate
            .entry((r.min_sample_rate(), r.max_sample_rate()))
            .or_default()
            .entry(r.sample_format().to_string())
            .or_default()
            .push(r.channels());
    }
    let mut parts = Vec::new();
    for ((lo, hi), formats) in by_rate {
        // Group formats that share the same channel list.
        let mut by_channels: BTreeMap<Vec<u16>, Vec<String>> = BTreeMap::new();
        for (f, mut ch) in formats {
            ch.sort_unstable();
            ch.dedup();
            by_channels.entry(ch).or_default().push(f);
        }
        for (ch, fmts) in by_channels {
            let rate = if lo == hi {
                format!("{lo} Hz")
            } else {
                format!("{lo}-{hi} Hz")
            };
            parts.push(format!(
                "{} {} ch {rate}",
                fmts.join("/"),
                channel_list(&ch)
            ));
        }
    }
    parts.join("; ")
}

/// `1-64`, or `1,2,6` when not contiguous.
fn channel_list(ch: &[u16]) -> String {
    match (ch.first(), ch.last()) {
        (Some(a), Some(b)) if usize::from(b - a) + 1 == ch.len() && a != b => format!("{a}-{b}"),
        _ => ch.iter().map(u16::to_string).collect::<Vec<_>>().join(","),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(ch: u16, lo: u32, hi: u32, f: SampleFormat) -> SupportedStreamConfigRange {
        SupportedStreamConfigRange::new(ch, lo, hi, SupportedBufferSize::Unknown, f)
    }

    fn usb_mic() -> (SupportedStreamConfig, Vec<SupportedStreamConfigRange>) {
        let ranges = vec![
            range(1, 16_000, 48_000, SampleFormat::I16),
            range(2, 16_000, 48_000, SampleFormat::I16),
            range(1, 44_100, 44_100, SampleFormat::F32),
        ];
        let default =
            SupportedStreamConfig::new(2, 48_000, SupportedBufferSize::Unknown, SampleFormat::I16);
        (default, ranges)
    }

    #[test]
    fn default_config_without_overrides() {
        let (d, r) = usb_mic();
        let (c, f) = choose(&d, &r, Overrides::default()).unwrap();
        assert_eq!(
            (c.sample_rate, c.channels, f),
            (48_000, 2, SampleFormat::I16)
        );
        assert_eq!(c.buffer_size, BufferSize::Default);
    }

    #[test]
    fn without_a_period_override_10_ms_periods_where_the_device_accepts_them() {
        let (_, r) = usb_mic();
        let default = |min, max| {
            SupportedStreamConfig::new(
                2,
                44_100,
                SupportedBufferSize::Range { min, max },
                SampleFormat::I16,
            )
        };
        let (c, _) = choose(&default(64, 65_536), &r, Overrides::default()).unwrap();
        assert_eq!(c.buffer_size, BufferSize::Fixed(441));
        // A device whose periods cannot be that short keeps its own choice.
        let (c, _) = choose(&default(1_024, 65_536), &r, Overrides::default()).unwrap();
        assert_eq!(c.buffer_size, BufferSize::Default);
        let o = Overrides {
            period: Some(960),
            ..Overrides::default()
        };
        let (c, _) = choose(&default(64, 65_536), &r, o).unwrap();
        assert_eq!(c.buffer_size, BufferSize::Fixed(960));
    }

    #[test]
    fn overrides_force_rate_channels_format_and_period() {
        let (d, r) = usb_mic();
        let o = Overrides {
            rate: Some(16_000),
            channels: Some(1),
            format: Some(SampleFormat::I16),
            period: Some(320),
        };
        let (c, f) = choose(&d, &r, o).unwrap();
        assert_eq!(
            (c.sample_rate, c.channels, f),
            (16_000, 1, SampleFormat::I16)
        );
        assert_eq!(c.buffer_size, BufferSize::Fixed(320));
    }

    #[test]
    fn unsupported_override_names_what_is_supported() {
        let (d, r) = usb_mic();
        let o = Overrides {
            rate: Some(96_000),
            ..Overrides::default()
        };
        let (wanted, supported) = choose(&d, &r, o).unwrap_err();
        assert_eq!(wanted, "i16 96000 Hz 2 ch");
        assert_eq!(supported, "i16 1-2 ch 16000-48000 Hz; f32 1 ch 44100 Hz");
    }

    #[test]
    fn unhandled_default_format_falls_back_to_f32_or_i16() {
        let ranges = vec![
            range(2, 48_000, 48_000, SampleFormat::I24),
            range(2, 48_000, 48_000, SampleFormat::I16),
        ];
        let d =
            SupportedStreamConfig::new(2, 48_000, SupportedBufferSize::Unknown, SampleFormat::I24);
        let (_, f) = choose(&d, &ranges, Overrides::default()).unwrap();
        assert_eq!(f, SampleFormat::I16);
        let only24 = vec![range(2, 48_000, 48_000, SampleFormat::I24)];
        assert!(choose(&d, &only24, Overrides::default()).is_err());
    }

    #[test]
    fn channel_lists() {
        assert_eq!(channel_list(&[1, 2, 3]), "1-3");
        assert_eq!(channel_list(&[2]), "2");
        assert_eq!(channel_list(&[1, 2, 6]), "1,2,6");
    }
}
