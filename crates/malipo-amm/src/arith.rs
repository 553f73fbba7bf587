//! Exact integer arithmetic for the pool formulas: `a * b / d` rounded
//! down or up, and the integer square root of a product. No floats: every
//! result is the exact floor or ceiling. Products that fit 128 bits (most
//! amounts) stay in machine integers; larger ones go through arbitrary
//! precision.
//!
//! Each function answers `None` when the result does not fit a `u128` or the
//! divisor is zero; callers turn that into [`crate::AmmError::Overflow`].

use num_bigint::BigUint;

/// `floor(a * b / d)`.
pub(crate) fn mul_div_floor(a: u128, b: u128, d: u128) -> Option<u128> {
    if d == 0 {
        return None;
    }
    if let Some(product) = a.checked_mul(b) {
        return Some(product / d);
    }
    u128::try_from(BigUint::from(a) * b / d).ok()
}

/// `ceil(a * b / d)`.
pub(crate) fn mul_div_ceil(a: u128, b: u128, d: u128) -> Option<u128> {
    if d == 0 {
        return None;
    }
    if let Some(product) = a.checked_mul(b) {
        return Some(product.div_ceil(d));
    }
    let product = BigUint::from(a) * b;
    let quotient = &product / d;
    let exact = &quotient * d == product;
    let quotient = u128::try_from(quotient).ok()?;
    if exact {
        Some(quotient)
    } else {
        quotient.checked_add(1)
    }
}

/// `floor(sqrt(x * y))`.
pub(crate) fn sqrt_product(x: u128, y: u128) -> Option<u128> {
    if let Some(product) = x.checked_mul(y) {
        return Some(product.isqrt());
    }
    u128::try_from((BigUint::from(x) * y).sqrt()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rounds_down_and_up() {
        assert_eq!(mul_div_floor(7, 3, 2), Some(10));
        assert_eq!(mul_div_ceil(7, 3, 2), Some(11));
        assert_eq!(mul_div_ceil(8, 3, 2), Some(12));
        assert_eq!(mul_div_floor(1, 1, 0), None);
        assert_eq!(mul_div_ceil(1, 1, 0), None);
    }

    #[test]
    fn uses_256_bits_in_the_middle() {
        let big = u128::MAX;
        assert_eq!(mul_div_floor(big, big, big), Some(big));
        assert_eq!(mul_div_floor(big, 3, 4), Some(big / 4 * 3 + 2));
        assert_eq!(mul_div_floor(big, big, 1), None);
        assert_eq!(mul_div_ceil(big, big, big - 1), None);
    }

    #[test]
    fn square_roots_of_large_products() {
        assert_eq!(sqrt_product(0, 5), Some(0));
        assert_eq!(sqrt_product(4, 9), Some(6));
        assert_eq!(sqrt_product(u128::MAX, u128::MAX), Some(u128::MAX));
        assert_eq!(sqrt_product(1 << 100, 1 << 100), Some(1 << 100));
        assert_eq!(sqrt_product((1 << 100) + 1, 1 << 100), Some(1 << 100));
    }

    proptest! {
        #[test]
        fn mul_div_matches_the_definition(a in any::<u128>(), b in any::<u128>(), d in 1..=u128::MAX) {
            let exact = BigUint::from(a) * b;
            if let Some(floor) = mul_div_floor(a, b, d) {
                let floor = BigUint::from(floor);
                prop_assert!(&floor * d <= exact);
                prop_assert!((floor + 1u8) * d > exact);
            }
            if let Some(ceil) = mul_div_ceil(a, b, d) {
                prop_assert!(BigUint::from(ceil) * d >= exact);
                prop_assert!(ceil == 0 || BigUint::from(ceil - 1) * d < exact);
            }
        }

        #[test]
        fn sqrt_is_the_floor(x in any::<u128>(), y in any::<u128>()) {
            let root = sqrt_product(x, y).map(BigUint::from);
            prop_assert!(root.is_some());
            let root = root.unwrap_or_default();
            let product = BigUint::from(x) * y;
            let next = &root + 1u8;
            prop_assert!(&root * &root <= product);
            prop_assert!(&next * &next > product);
        }
    }
}
