//! Codes people read and type: the unambiguous alphabet vouchers and bank
//! deposit references share, uniform random draws from it, and the bank
//! deposit reference with its check character.
//!
//! A deposit reference is 10 characters of [`UNAMBIGUOUS_ALPHABET`]
//! (31 symbols: digits and capitals without 0, O, 1, I, L): 9 random, then
//! a check character chosen so that `Σ (i + 1) · value(cᵢ) ≡ 0 (mod 31)`
//! over the 10 positions. 31 is prime and the weights 1..=10 are distinct
//! and non-zero modulo 31, so:
//! - any single wrong character changes the sum by `w · d` with
//!   `w, d ≢ 0`: never 0 modulo a prime, always detected;
//! - swapping two different characters at positions `i`, `j` changes it by
//!   `(wᵢ − wⱼ)(a − b) ≢ 0`: every transposition (adjacent or not) is
//!   detected.
//!
//! Shown grouped `XXXXX-XXXXX`; read back in any case, with or without
//! spaces and dashes.

use std::fmt;

/// Digits and capitals without look-alikes (0/O, 1/I/L): 31 characters,
/// a prime number, which the check character relies on.
pub const UNAMBIGUOUS_ALPHABET: &[u8; 31] = b"23456789ABCDEFGHJKMNPQRSTUVWXYZ";
/// Characters in a deposit reference, the check character included.
pub const DEPOSIT_REFERENCE_LENGTH: usize = 10;
/// Input longer than this is not a reference.
pub const DEPOSIT_REFERENCE_INPUT_LENGTH_MAX: usize = 64;
const MODULUS: u32 = 31;

/// `length` characters drawn uniformly from [`UNAMBIGUOUS_ALPHABET`] with a
/// CSPRNG (rejection sampling: bytes below 248 = 8 × 31 map uniformly).
pub fn random_from_alphabet(length: usize) -> String {
    let size = UNAMBIGUOUS_ALPHABET.len();
    let limit = (256 / size * size) as u8;
    let mut code = String::with_capacity(length);
    let mut random = vec![0u8; 2 * length.max(1)];
    while code.len() < length {
        rand::fill(&mut random[..]);
        for byte in &random {
            if code.len() < length && *byte < limit {
                code.push(char::from(UNAMBIGUOUS_ALPHABET[usize::from(*byte) % size]));
            }
        }
    }
    code
}

fn value_of(byte: u8) -> Option<u32> {
    UNAMBIGUOUS_ALPHABET
        .iter()
        .position(|c| *c == byte)
        .map(|index| index as u32)
}

/// `Σ (i + 1) · value(cᵢ) mod 31`; `None` if a character is outside the alphabet.
fn weighted_sum(code: &[u8]) -> Option<u32> {
    code.iter()
        .enumerate()
        .try_fold(0u32, |sum, (index, byte)| {
            Some((sum + (index as u32 + 1) * value_of(*byte)?) % MODULUS)
        })
}

/// The character that makes `payload` + it a valid reference.
fn check_character(payload: &[u8]) -> Option<u8> {
    let sum = weighted_sum(payload)?;
    let weight = payload.len() as u32 + 1;
    // The check value c solves sum + weight · c ≡ 0: c = −sum · weight⁻¹,
    // with the inverse by Fermat (weight^(p−2)).
    let inverse = (0..MODULUS - 2).fold(1u32, |acc, _| acc * weight % MODULUS);
    let value = (MODULUS - sum) % MODULUS * inverse % MODULUS;
    Some(UNAMBIGUOUS_ALPHABET[value as usize])
}

/// Why text is not a deposit reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceProblem {
    #[error("a deposit reference has 10 characters (dashes and spaces aside)")]
    Length,
    #[error("a deposit reference uses only 23456789ABCDEFGHJKMNPQRSTUVWXYZ")]
    Character,
    #[error("the deposit reference's check character does not match: a character is mistyped")]
    CheckCharacter,
}

/// A well-formed deposit reference: 10 characters, check character valid,
/// stored without the dash.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct DepositReference(String);

impl DepositReference {
    /// A new random reference (9 random characters, about 44.6 bits, and
    /// the check character).
    pub fn generate() -> DepositReference {
        let mut code = random_from_alphabet(DEPOSIT_REFERENCE_LENGTH - 1);
        if let Some(check) = check_character(code.as_bytes()) {
            code.push(char::from(check));
        }
        DepositReference(code)
    }

    /// Reads a reference as a person typed it: any case, spaces and dashes
    /// ignored; a wrong check character is refused.
    pub fn parse(input: &str) -> Result<DepositReference, ReferenceProblem> {
        if input.len() > DEPOSIT_REFERENCE_INPUT_LENGTH_MAX {
            return Err(ReferenceProblem::Length);
        }
        let code: String = input
            .chars()
            .filter(|c| *c != '-' && !c.is_whitespace())
            .map(|c| c.to_ascii_uppercase())
            .collect();
        if code.chars().count() != DEPOSIT_REFERENCE_LENGTH {
            return Err(ReferenceProblem::Length);
        }
        match weighted_sum(code.as_bytes()) {
            None => Err(ReferenceProblem::Character),
            Some(0) => Ok(DepositReference(code)),
            Some(_) => Err(ReferenceProblem::CheckCharacter),
        }
    }

    /// The stored form: 10 characters, no dash.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `XXXXX-XXXXX`, for people.
    pub fn grouped(&self) -> String {
        let (first, second) = self.0.split_at(DEPOSIT_REFERENCE_LENGTH / 2);
        format!("{first}-{second}")
    }
}

impl fmt::Debug for DepositReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DepositReference({})", self.grouped())
    }
}

impl fmt::Display for DepositReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.grouped())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn generated_references_are_valid_grouped_and_read_back_any_way() {
        let reference = DepositReference::generate();
        assert_eq!(reference.as_str().len(), DEPOSIT_REFERENCE_LENGTH);
        let grouped = reference.grouped();
        assert_eq!(grouped.len(), 11);
        assert_eq!(&grouped[5..6], "-");
        assert_eq!(DepositReference::parse(&grouped), Ok(reference.clone()));
        let sloppy = format!(" {} ", grouped.to_ascii_lowercase().replace('-', " - "));
        assert_eq!(DepositReference::parse(&sloppy), Ok(reference.clone()));
        assert_ne!(DepositReference::generate(), reference);
    }

    #[test]
    fn a_known_reference_and_its_neighbours() {
        // 23456789A: values 0..=8, sum = Σ (i+1)·i for i in 0..9 = 240
        // ≡ 23 (mod 31); 10·c ≡ 8 → c = 8·28 mod 31 = 7 -> '9'.
        assert_eq!(check_character(b"23456789A"), Some(b'9'));
        assert!(DepositReference::parse("23456-789A9").is_ok());
        assert_eq!(
            DepositReference::parse("23456-789AB"),
            Err(ReferenceProblem::CheckCharacter)
        );
        assert_eq!(
            DepositReference::parse("23456-789A0"),
            Err(ReferenceProblem::Character)
        );
        assert_eq!(
            DepositReference::parse("23456-789A"),
            Err(ReferenceProblem::Length)
        );
        assert_eq!(
            DepositReference::parse(&"-".repeat(100)),
            Err(ReferenceProblem::Length)
        );
    }

    fn payload() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(0usize..31, DEPOSIT_REFERENCE_LENGTH - 1).prop_map(|values| {
            values
                .into_iter()
                .map(|v| UNAMBIGUOUS_ALPHABET[v])
                .collect()
        })
    }

    fn complete(payload: &[u8]) -> String {
        let mut code = payload.to_vec();
        code.push(check_character(payload).unwrap());
        String::from_utf8(code).unwrap()
    }

    proptest! {
        #[test]
        fn every_completed_payload_is_valid(payload in payload()) {
            prop_assert!(DepositReference::parse(&complete(&payload)).is_ok());
        }

        #[test]
        fn every_single_character_error_is_detected(
            payload in payload(),
            position in 0usize..DEPOSIT_REFERENCE_LENGTH,
            replacement in 0usize..31,
        ) {
            let mut code = complete(&payload).into_bytes();
            let wrong = UNAMBIGUOUS_ALPHABET[replacement];
            prop_assume!(code[position] != wrong);
            code[position] = wrong;
            let code = String::from_utf8(code).unwrap();
            prop_assert_eq!(DepositReference::parse(&code), Err(ReferenceProblem::CheckCharacter));
        }

        #[test]
        fn every_transposition_is_detected(
            payload in payload(),
            first in 0usize..DEPOSIT_REFERENCE_LENGTH,
            second in 0usize..DEPOSIT_REFERENCE_LENGTH,
        ) {
            let mut code = complete(&payload).into_bytes();
            prop_assume!(code[first] != code[second]);
            code.swap(first, second);
            let code = String::from_utf8(code).unwrap();
            prop_assert_eq!(DepositReference::parse(&code), Err(ReferenceProblem::CheckCharacter));
        }
    }

    #[test]
    fn every_character_is_about_equally_likely() {
        let mut counts = [0u32; 31];
        for _ in 0..2_000 {
            for b in random_from_alphabet(16).bytes() {
                counts[value_of(b).unwrap() as usize] += 1;
            }
        }
        assert!(
            counts.iter().all(|n| (850..1_220).contains(n)),
            "{counts:?}"
        );
    }
}
