//! Register words as values, and a counter's step across its rollover.

use crate::config::{Kind, WordOrder};

/// The value `words` (as read, in register order) hold.
pub fn value(kind: Kind, order: WordOrder, words: &[u16]) -> Option<f64> {
    let pair = || {
        let (a, b) = (*words.first()?, *words.get(1)?);
        let (hi, lo) = match order {
            WordOrder::Big => (a, b),
            WordOrder::Little => (b, a),
        };
        Some((u32::from(hi) << 16) | u32::from(lo))
    };
    match kind {
        Kind::U16 => words.first().map(|w| f64::from(*w)),
        Kind::U32 => pair().map(f64::from),
        Kind::I32 => pair().map(|v| f64::from(v as i32)),
        Kind::F32 => pair().map(|v| f64::from(f32::from_bits(v))).filter(|v| v.is_finite()),
    }
}

/// How far a counter moved from `before` to `now`, counting one wrap at
/// `modulus` (a counter never runs backwards otherwise).
pub fn counter_step(before: f64, now: f64, modulus: f64) -> f64 {
    if now >= before { now - before } else { now + modulus - before }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_read_as_each_type_and_word_order() {
        assert_eq!(value(Kind::U16, WordOrder::Big, &[513]), Some(513.0));
        assert_eq!(value(Kind::U32, WordOrder::Big, &[0x0001, 0x0002]), Some(65_538.0));
        assert_eq!(value(Kind::U32, WordOrder::Little, &[0x0002, 0x0001]), Some(65_538.0));
        assert_eq!(value(Kind::I32, WordOrder::Big, &[0xFFFF, 0xFFFE]), Some(-2.0));
        let bits = 42.5f32.to_bits();
        let (hi, lo) = ((bits >> 16) as u16, bits as u16);
        assert_eq!(value(Kind::F32, WordOrder::Big, &[hi, lo]), Some(42.5));
        assert_eq!(value(Kind::F32, WordOrder::Little, &[lo, hi]), Some(42.5));
        assert_eq!(value(Kind::F32, WordOrder::Big, &[0x7FC0, 0]), None, "NaN is no reading");
        assert_eq!(value(Kind::U32, WordOrder::Big, &[1]), None, "two words needed");
    }

    #[test]
    fn a_counter_step_survives_rollover() {
        assert_eq!(counter_step(100.0, 150.0, 65_536.0), 50.0);
        assert_eq!(counter_step(65_500.0, 14.0, 65_536.0), 50.0);
        assert_eq!(counter_step(4_294_967_000.0, 200.0, 4_294_967_296.0), 496.0);
    }
}
