//! Storage sizes in the Kubernetes quantity notation (`10Gi`, `500M`, `1`).
//!
//! Owns the one grammar `KafkaCluster.spec.storage.size` accepts: a plain
//! decimal number with an optional binary (`Ki` … `Ei`) or decimal (`k` …
//! `E`) unit. That is a deliberate subset of what the apiserver calls a
//! quantity: exponents (`1e9`), milli (`m`) and signs are refused because
//! nobody means them for a volume, and the common slips (`10GB`, `10gi`) get a
//! message that names the unit to write instead.
//!
//! The CEL rule in the CRD ([`SIZE_PATTERN`]) and [`parse_storage_size`] must
//! accept exactly the same strings; the tests hold them together.

/// The units [`parse_storage_size`] accepts, as a person reads them in an error.
pub const ALLOWED_UNITS: &str = "Ki, Mi, Gi, Ti, Pi, Ei (powers of 1024), \
     k, M, G, T, P, E (powers of 1000) or none (bytes)";

/// Longest size string accepted; also the CRD's `maxLength`, which bounds the
/// CEL regex cost.
pub const MAX_SIZE_LENGTH: usize = 64;

/// RE2 pattern of a valid size, used by the CRD's CEL rule.
pub const SIZE_PATTERN: &str = "^[0-9]+([.][0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$";

/// Units and the number of bytes each stands for.
const UNITS: [(&str, u128); 12] = [
    ("Ki", 1 << 10),
    ("Mi", 1 << 20),
    ("Gi", 1 << 30),
    ("Ti", 1 << 40),
    ("Pi", 1 << 50),
    ("Ei", 1 << 60),
    ("k", 1_000),
    ("M", 1_000_000),
    ("G", 1_000_000_000),
    ("T", 1_000_000_000_000),
    ("P", 1_000_000_000_000_000),
    ("E", 1_000_000_000_000_000_000),
];

/// Why a string is not a storage size.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// Nothing to parse.
    #[error("the size is empty: write a number with one of the units {ALLOWED_UNITS}, e.g. 10Gi")]
    Empty,
    /// Longer than [`MAX_SIZE_LENGTH`].
    #[error(
        "the size {value:?} is {len} characters long, more than the {MAX_SIZE_LENGTH} allowed: \
         write it with a larger unit, e.g. 10Gi"
    )]
    TooLong {
        /// The rejected string.
        value: String,
        /// Its length in bytes.
        len: usize,
    },
    /// The number part is not `digits[.digits]`.
    #[error(
        "the size {value:?} is not a quantity: write a plain number (no sign or exponent) \
         with one of the units {ALLOWED_UNITS}, e.g. 10Gi"
    )]
    Malformed {
        /// The rejected string.
        value: String,
    },
    /// The number is fine but the unit is not one of [`ALLOWED_UNITS`].
    #[error(
        "the size {value:?} has unit {unit:?}, which Kubernetes does not know{hint}: \
         the allowed units are {ALLOWED_UNITS}"
    )]
    UnknownUnit {
        /// The rejected string.
        value: String,
        /// The suffix that is not a unit.
        unit: String,
        /// A suggestion such as `; write "10Gi" or "10G"`, or empty.
        hint: String,
    },
    /// The size is zero bytes.
    #[error("the size {value:?} is zero: a volume needs at least one byte, e.g. 10Gi")]
    Zero {
        /// The rejected string.
        value: String,
    },
    /// More bytes (or more decimal places) than fit in 128 bits.
    #[error("the size {value:?} is too large or too precise to represent: use a larger unit with fewer digits")]
    TooLarge {
        /// The rejected string.
        value: String,
    },
}

/// Parses a storage size and returns it in bytes, rounding a fractional byte
/// count up (as Kubernetes does for volume sizes).
///
/// Accepts exactly the strings [`SIZE_PATTERN`] matches, except zero.
pub fn parse_storage_size(value: &str) -> Result<u128, QuantityError> {
    if value.is_empty() {
        return Err(QuantityError::Empty);
    }
    if value.len() > MAX_SIZE_LENGTH {
        return Err(QuantityError::TooLong { value: value.to_owned(), len: value.len() });
    }
    let number_len = value.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(value.len());
    let (number, unit) = value.split_at(number_len);
    let (whole, fraction) = match number.split_once('.') {
        Some((whole, fraction)) => (whole, fraction),
        None => (number, ""),
    };
    let well_formed = !whole.is_empty()
        && whole.bytes().all(|b| b.is_ascii_digit())
        && (!number.contains('.') || (!fraction.is_empty() && fraction.bytes().all(|b| b.is_ascii_digit())));
    if !well_formed {
        return Err(QuantityError::Malformed { value: value.to_owned() });
    }
    let multiplier = match UNITS.iter().find(|(name, _)| *name == unit) {
        Some((_, multiplier)) => *multiplier,
        None if unit.is_empty() => 1,
        None => {
            return Err(QuantityError::UnknownUnit {
                value: value.to_owned(),
                unit: unit.to_owned(),
                hint: unit_hint(number, unit),
            });
        }
    };
    let too_large = || QuantityError::TooLarge { value: value.to_owned() };
    // bytes = ceil((whole.fraction) * multiplier), in integers:
    // (whole * 10^f + fraction) * multiplier / 10^f, rounded up.
    let scale = u32::try_from(fraction.len()).ok().and_then(|f| 10u128.checked_pow(f)).ok_or_else(too_large)?;
    let digits = format!("{whole}{fraction}");
    let scaled: u128 = digits.parse().map_err(|_| too_large())?;
    let product = scaled.checked_mul(multiplier).ok_or_else(too_large)?;
    let bytes = product.div_ceil(scale);
    if bytes == 0 {
        return Err(QuantityError::Zero { value: value.to_owned() });
    }
    Ok(bytes)
}

/// Suggests the units a mistyped one most likely meant: `GB`, `gb`, `gi`
/// become `Gi` or `G`.
fn unit_hint(number: &str, unit: &str) -> String {
    let Some(first) = unit.chars().next() else {
        return String::new();
    };
    let letter = first.to_ascii_uppercase();
    if !"KMGTPE".contains(letter) {
        return String::new();
    }
    let decimal = if letter == 'K' { 'k' } else { letter };
    format!("; write \"{number}{letter}i\" ({letter}i = 1024^n bytes) or \"{number}{decimal}\" (powers of 1000)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_and_decimal_units_scale_to_bytes() {
        assert_eq!(parse_storage_size("10Gi"), Ok(10 << 30));
        assert_eq!(parse_storage_size("500M"), Ok(500_000_000));
        assert_eq!(parse_storage_size("1"), Ok(1));
        assert_eq!(parse_storage_size("1k"), Ok(1_000));
        assert_eq!(parse_storage_size("2Ei"), Ok(2 << 60));
        assert_eq!(parse_storage_size("1.5Gi"), Ok(3 << 29));
    }

    #[test]
    fn fractional_bytes_round_up() {
        assert_eq!(parse_storage_size("0.1"), Ok(1));
        assert_eq!(parse_storage_size("1.001k"), Ok(1_001));
        assert_eq!(parse_storage_size("0.0001k"), Ok(1));
    }

    #[test]
    fn mistyped_units_are_refused_with_the_allowed_units_and_a_hint() {
        for (value, hint) in [("10GB", "\"10Gi\""), ("10gi", "\"10Gi\""), ("5mb", "\"5Mi\""), ("3kb", "\"3k\"")] {
            let err = parse_storage_size(value).unwrap_err();
            assert!(matches!(err, QuantityError::UnknownUnit { .. }), "{value}: {err:?}");
            let message = err.to_string();
            assert!(message.contains(ALLOWED_UNITS), "{message}");
            assert!(message.contains(hint), "{message} lacks {hint}");
        }
    }

    #[test]
    fn signs_exponents_and_milli_are_refused_with_the_allowed_units() {
        for value in ["-1", "+1", "1e9", "1E3x", "100m", ".5Gi", "5.Gi", "1.2.3", "Gi", " 1Gi", "1 Gi"] {
            let err = parse_storage_size(value).unwrap_err();
            assert!(err.to_string().contains(ALLOWED_UNITS), "{value}: {err}");
        }
    }

    #[test]
    fn zero_empty_overlong_and_overflowing_sizes_are_refused() {
        assert!(matches!(parse_storage_size("0"), Err(QuantityError::Zero { .. })));
        assert!(matches!(parse_storage_size("0.000Gi"), Err(QuantityError::Zero { .. })));
        assert_eq!(parse_storage_size(""), Err(QuantityError::Empty));
        let long = "1".repeat(MAX_SIZE_LENGTH + 1);
        assert!(matches!(parse_storage_size(&long), Err(QuantityError::TooLong { .. })));
        let huge = format!("{}Ei", "9".repeat(40));
        assert!(matches!(parse_storage_size(&huge), Err(QuantityError::TooLarge { .. })));
    }
}
