//! Exact money arithmetic: every amount is an integer number of nano-dollars (1e-9 USD).
//!
//! Realtime prices are quoted per million tokens with at most two or three decimals
//! ($0.40 / 1M = 400 n$ per token), so nano-dollars keep every per-token price and every
//! sum exact. Floats would drift across thousands of responses; finance needs rows that
//! add up to the bill.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An amount of US dollars in nano-dollars. Never negative: costs only accumulate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NanoUsd(pub u64);

/// Nano-dollars in one dollar.
pub const NANOS_PER_USD: u64 = 1_000_000_000;

/// Why a decimal dollar amount was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("`{0}` is not a dollar amount: expected a non-negative decimal such as \"1.50\"")]
    NotDecimal(String),
    #[error("`{0}` has more than 9 decimals: amounts are kept exactly in nano-dollars")]
    TooPrecise(String),
    #[error("`{0}` is too large")]
    TooLarge(String),
}

impl NanoUsd {
    pub const ZERO: NanoUsd = NanoUsd(0);

    /// The sum, or `None` when it does not fit: an amount is never silently capped.
    pub fn checked_add(self, other: NanoUsd) -> Option<NanoUsd> {
        self.0.checked_add(other.0).map(NanoUsd)
    }

    /// `count` units at `rate` nano-dollars each, or `None` when it does not fit.
    pub fn checked_mul(count: u64, rate: u64) -> Option<NanoUsd> {
        count.checked_mul(rate).map(NanoUsd)
    }

    /// The amount as a decimal string with all nine decimals, for SQL `numeric` columns.
    pub fn to_decimal_string(self) -> String {
        format!("{}.{:09}", self.0 / NANOS_PER_USD, self.0 % NANOS_PER_USD)
    }
}

/// Running totals (a session's cost, today's spend) add amounts pricing has already checked:
/// every priced usage is at most `metering::MAX_USAGE_COST` ($1M) and a larger one raises a
/// critical alert instead of being added, so a total would need eighteen million such usages
/// to reach `u64::MAX`. Totals therefore stay exact; the bound only keeps a bug from panicking
/// the lifecycle loop.
impl std::ops::Add for NanoUsd {
    type Output = NanoUsd;
    fn add(self, other: NanoUsd) -> NanoUsd {
        NanoUsd(self.0.saturating_add(other.0))
    }
}

impl std::ops::AddAssign for NanoUsd {
    fn add_assign(&mut self, other: NanoUsd) {
        *self = *self + other;
    }
}

impl std::iter::Sum for NanoUsd {
    fn sum<I: Iterator<Item = NanoUsd>>(iter: I) -> NanoUsd {
        iter.fold(NanoUsd::ZERO, |a, b| a + b)
    }
}

impl FromStr for NanoUsd {
    type Err = MoneyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().trim_start_matches('$');
        let (int, frac) = t.split_once('.').unwrap_or((t, ""));
        let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
        if (int.is_empty() && frac.is_empty()) || !digits(int) || !digits(frac) {
            return Err(MoneyError::NotDecimal(s.to_owned()));
        }
        if frac.len() > 9 {
            return Err(MoneyError::TooPrecise(s.to_owned()));
        }
        let whole: u64 = if int.is_empty() {
            0
        } else {
            int.parse()
                .map_err(|_| MoneyError::TooLarge(s.to_owned()))?
        };
        let frac_nanos: u64 = format!("{frac:0<9}")
            .parse()
            .map_err(|_| MoneyError::NotDecimal(s.to_owned()))?;
        whole
            .checked_mul(NANOS_PER_USD)
            .and_then(|w| w.checked_add(frac_nanos))
            .map(NanoUsd)
            .ok_or_else(|| MoneyError::TooLarge(s.to_owned()))
    }
}

impl fmt::Display for NanoUsd {
    /// `$0.006966` style: six decimals unless more are needed to stay exact.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let full = self.to_decimal_string();
        let (int, frac) = full.split_once('.').unwrap_or((&full, ""));
        let trimmed = frac.trim_end_matches('0');
        let shown = if trimmed.len() < 6 {
            &frac[..6]
        } else {
            trimmed
        };
        write!(f, "${int}.{shown}")
    }
}

impl Serialize for NanoUsd {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

impl<'de> Deserialize<'de> for NanoUsd {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        u64::deserialize(d).map(NanoUsd)
    }
}

/// A dollar amount written as a decimal string in configuration files (`"1.50"`).
///
/// Strings, not TOML floats, so `0.1` is exactly ten cents.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct UsdAmount(pub NanoUsd);

impl Serialize for UsdAmount {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let full = self.0.to_decimal_string();
        let trimmed = full.trim_end_matches('0').trim_end_matches('.');
        s.serialize_str(trimmed)
    }
}

impl<'de> Deserialize<'de> for UsdAmount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse::<NanoUsd>()
            .map(UsdAmount)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_decimal_strings() {
        assert_eq!("1.50".parse::<NanoUsd>(), Ok(NanoUsd(1_500_000_000)));
        assert_eq!("$0.4".parse::<NanoUsd>(), Ok(NanoUsd(400_000_000)));
        assert_eq!(".000000001".parse::<NanoUsd>(), Ok(NanoUsd(1)));
        assert_eq!("20".parse::<NanoUsd>(), Ok(NanoUsd(20 * NANOS_PER_USD)));
    }

    #[test]
    fn refuses_bad_amounts() {
        for bad in ["", "-1", "1.2.3", "abc", "1e3", "."] {
            assert!(
                matches!(bad.parse::<NanoUsd>(), Err(MoneyError::NotDecimal(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            "0.0000000001".parse::<NanoUsd>(),
            Err(MoneyError::TooPrecise(_))
        ));
        assert!(matches!(
            "99999999999999999999".parse::<NanoUsd>(),
            Err(MoneyError::TooLarge(_))
        ));
    }

    #[test]
    fn displays_with_at_least_six_decimals() {
        assert_eq!(NanoUsd(6_965_600).to_string(), "$0.0069656");
        assert_eq!(NanoUsd(6_000_000).to_string(), "$0.006000");
        assert_eq!(NanoUsd(6_965_650).to_string(), "$0.00696565");
        assert_eq!(NanoUsd(1_500_000_000).to_string(), "$1.500000");
        assert_eq!(NanoUsd(1).to_decimal_string(), "0.000000001");
    }

    #[test]
    fn checked_arithmetic_refuses_what_does_not_fit() {
        assert_eq!(NanoUsd(u64::MAX).checked_add(NanoUsd(1)), None);
        assert_eq!(NanoUsd(2).checked_add(NanoUsd(3)), Some(NanoUsd(5)));
        assert_eq!(NanoUsd::checked_mul(u64::MAX, 2), None);
        assert_eq!(NanoUsd::checked_mul(7, 400), Some(NanoUsd(2_800)));
    }

    proptest! {
        #[test]
        fn checked_add_is_exact_or_none(a in any::<u64>(), b in any::<u64>()) {
            let exact = u128::from(a) + u128::from(b);
            match NanoUsd(a).checked_add(NanoUsd(b)) {
                Some(sum) => prop_assert_eq!(u128::from(sum.0), exact),
                None => prop_assert!(exact > u128::from(u64::MAX)),
            }
        }

        #[test]
        fn checked_mul_is_exact_or_none(count in any::<u64>(), rate in any::<u64>()) {
            let exact = u128::from(count) * u128::from(rate);
            match NanoUsd::checked_mul(count, rate) {
                Some(p) => prop_assert_eq!(u128::from(p.0), exact),
                None => prop_assert!(exact > u128::from(u64::MAX)),
            }
        }

        #[test]
        fn decimal_string_round_trips(n in any::<u64>()) {
            prop_assert_eq!(NanoUsd(n).to_decimal_string().parse::<NanoUsd>(), Ok(NanoUsd(n)));
        }
    }
}
