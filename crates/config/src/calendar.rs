//! `kiosk.timezone` → the core's [`Calendar`]: the zone's UTC offsets read once from the
//! system's time zone database (`/usr/share/zoneinfo`, through `jiff`), so the core finds the
//! gym's day with a pure table lookup and no file access.

use jarvis_core::session::limits::Calendar;
use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::types::KioskConfig;

/// The table covers 2020-01-01 to 2100-01-01 UTC, independent of the clock (a Pi without a
/// real-time clock may boot in 1970): about 160 transitions for a zone with DST. Before it,
/// the 2020 offset applies; after it, the last one.
const FROM_MS: i64 = 1_577_836_800_000;
const UNTIL_MS: i64 = 4_102_444_800_000;

impl KioskConfig {
    /// The zone `kiosk.timezone` names, or the system's zone when it is unset.
    pub fn time_zone(&self) -> Result<TimeZone, String> {
        match self.timezone.as_deref() {
            None => Ok(TimeZone::system()),
            Some(name) => TimeZone::get(name).map_err(|e| {
                format!(
                    "`{name}` is not a time zone of this system's database ({e}): use an IANA \
                     name such as \"Europe/Paris\" (see /usr/share/zoneinfo, package tzdata)"
                )
            }),
        }
    }

    /// The gym's calendar for the daily budget. An unknown zone falls back to UTC (validation
    /// has already refused it, naming `kiosk.timezone`).
    pub fn calendar(&self) -> Calendar {
        match self.time_zone() {
            Ok(tz) => {
                let name = self
                    .timezone
                    .clone()
                    .or_else(|| tz.iana_name().map(str::to_owned))
                    .unwrap_or_else(|| "system local time".to_owned());
                calendar(&name, &tz)
            }
            Err(_) => Calendar::utc(),
        }
    }
}

/// The offsets of `tz` from 2020 to 2100 as a [`Calendar`] named `name`.
pub fn calendar(name: &str, tz: &TimeZone) -> Calendar {
    let Ok(from) = Timestamp::from_millisecond(FROM_MS) else {
        return Calendar::utc();
    };
    let transitions = tz
        .following(from)
        .map(|t| (t.timestamp().as_millisecond(), t.offset().seconds()))
        .take_while(|(at, _)| *at < UNTIL_MS)
        .collect();
    Calendar::new(name, tz.to_offset(from).seconds(), transitions)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jarvis_core::session::limits::DAY_MS;

    fn kiosk(zone: Option<&str>) -> KioskConfig {
        KioskConfig {
            timezone: zone.map(str::to_owned),
            ..KioskConfig::default()
        }
    }

    #[test]
    fn paris_days_follow_the_2026_dst_changes_from_the_system_database() {
        let c = kiosk(Some("Europe/Paris")).calendar();
        assert_eq!(c.zone(), "Europe/Paris");
        let (mar29, mar30, oct25, oct26) = (20_541, 20_542, 20_751, 20_752);
        // CET: the 29th starts at 23:00 UTC on the 28th; CEST from 01:00 UTC that night.
        assert_eq!(c.day_start_ms(mar29), mar29 * DAY_MS - 3_600_000);
        assert_eq!(c.day_start_ms(mar30), mar30 * DAY_MS - 2 * 3_600_000);
        assert_eq!(c.day_start_ms(oct25), oct25 * DAY_MS - 2 * 3_600_000);
        assert_eq!(c.day_start_ms(oct26), oct26 * DAY_MS - 3_600_000);
        // The spring-forward day has 23 hours, the fall-back day 25.
        assert_eq!(
            c.day_start_ms(mar30) - c.day_start_ms(mar29),
            23 * 3_600_000
        );
        assert_eq!(
            c.day_start_ms(oct26) - c.day_start_ms(oct25),
            25 * 3_600_000
        );
    }

    #[test]
    fn zones_without_dst_and_utc_have_fixed_midnights() {
        let tokyo = kiosk(Some("Asia/Tokyo")).calendar();
        assert_eq!(tokyo.day_start_ms(20_541), 20_541 * DAY_MS - 9 * 3_600_000);
        let utc = kiosk(Some("UTC")).calendar();
        assert_eq!(utc.day_start_ms(20_541), 20_541 * DAY_MS);
    }

    #[test]
    fn an_unknown_zone_is_an_error_naming_it() {
        let err = kiosk(Some("Mars/Olympus_Mons")).time_zone().unwrap_err();
        assert!(err.contains("Mars/Olympus_Mons"), "{err}");
        assert!(err.contains("Europe/Paris"), "{err}");
        assert_eq!(kiosk(Some("Mars/Olympus_Mons")).calendar(), Calendar::utc());
    }

    #[test]
    fn unset_means_the_systems_zone() {
        let c = kiosk(None).calendar();
        let system = TimeZone::system();
        let now = Timestamp::now();
        assert_eq!(
            c.offset_ms(now.as_millisecond()),
            i64::from(system.to_offset(now).seconds()) * 1000
        );
    }
}
