//! Does a ZIP code fit a state? By the USPS's three-digit ZIP prefixes ("sectional center
//! facilities") assigned to each state, territory and military postal code, including the
//! known prefixes that cross a state line (e.g. 063 for Fishers Island NY, 733 for Austin TX,
//! 755 for Texarkana AR). A prefix list, not a ZIP database: it catches a ZIP typed for the
//! wrong state, which is what a warning needs.

/// Inclusive ranges of three-digit ZIP prefixes for each two-letter USPS code.
const STATE_ZIP_PREFIXES: &[(&str, &[(u16, u16)])] = &[
    ("AL", &[(350, 369)]),
    ("AK", &[(995, 999)]),
    ("AZ", &[(850, 865)]),
    ("AR", &[(716, 729), (755, 755)]),
    ("CA", &[(900, 961)]),
    ("CO", &[(800, 816)]),
    ("CT", &[(60, 69)]),
    ("DE", &[(197, 199)]),
    ("DC", &[(200, 205), (569, 569)]),
    ("FL", &[(320, 349)]),
    ("GA", &[(300, 319), (398, 399)]),
    ("HI", &[(967, 968)]),
    ("ID", &[(832, 838)]),
    ("IL", &[(600, 629)]),
    ("IN", &[(460, 479)]),
    ("IA", &[(500, 528)]),
    ("KS", &[(660, 679)]),
    ("KY", &[(400, 427)]),
    ("LA", &[(700, 714)]),
    ("ME", &[(39, 49)]),
    ("MD", &[(206, 219)]),
    ("MA", &[(10, 27), (55, 55)]),
    ("MI", &[(480, 499)]),
    ("MN", &[(550, 567)]),
    ("MS", &[(386, 397)]),
    ("MO", &[(630, 658)]),
    ("MT", &[(590, 599)]),
    ("NE", &[(680, 693)]),
    ("NV", &[(889, 898)]),
    ("NH", &[(30, 38)]),
    ("NJ", &[(70, 89)]),
    ("NM", &[(870, 884)]),
    ("NY", &[(5, 5), (63, 63), (100, 149)]),
    ("NC", &[(270, 289)]),
    ("ND", &[(580, 588)]),
    ("OH", &[(430, 459)]),
    ("OK", &[(730, 749)]),
    ("OR", &[(970, 979)]),
    ("PA", &[(150, 196)]),
    ("RI", &[(28, 29)]),
    ("SC", &[(290, 299)]),
    ("SD", &[(570, 577)]),
    ("TN", &[(370, 385)]),
    ("TX", &[(733, 733), (750, 799), (885, 885)]),
    ("UT", &[(840, 847)]),
    ("VT", &[(50, 54), (56, 59)]),
    ("VA", &[(201, 201), (220, 246)]),
    ("WA", &[(980, 994)]),
    ("WV", &[(247, 268)]),
    ("WI", &[(530, 549)]),
    ("WY", &[(820, 831), (834, 834)]),
    ("PR", &[(6, 7), (9, 9)]),
    ("VI", &[(8, 8)]),
    ("GU", &[(969, 969)]),
    ("MP", &[(969, 969)]),
    ("AS", &[(967, 967)]),
    ("PW", &[(969, 969)]),
    ("FM", &[(969, 969)]),
    ("MH", &[(969, 969)]),
    ("AA", &[(340, 340)]),
    ("AE", &[(90, 98)]),
    ("AP", &[(962, 966)]),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZipCheck {
    Fits,
    /// Not `12345`, `12345-6789` or `123456789`.
    Malformed,
    UnknownState,
    NotInState,
}

/// Checks a ZIP code against a two-letter state code (case-insensitive).
pub fn check_zip(state: &str, zip: &str) -> ZipCheck {
    let Some(prefix) = zip_prefix(zip) else {
        return ZipCheck::Malformed;
    };
    let Some(ranges) = state_ranges(state) else {
        return ZipCheck::UnknownState;
    };
    if ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&prefix)) {
        ZipCheck::Fits
    } else {
        ZipCheck::NotInState
    }
}

/// Whether `state` is a known two-letter USPS code (case-insensitive).
pub fn is_known_state(state: &str) -> bool {
    state_ranges(state).is_some()
}

fn state_ranges(state: &str) -> Option<&'static [(u16, u16)]> {
    if state.len() != 2 {
        return None;
    }
    STATE_ZIP_PREFIXES
        .iter()
        .find(|(code, _)| code.eq_ignore_ascii_case(state))
        .map(|(_, ranges)| *ranges)
}

/// The first three digits of a well-formed ZIP or ZIP+4.
fn zip_prefix(zip: &str) -> Option<u16> {
    let b = zip.as_bytes();
    let well_formed = match b.len() {
        5 | 9 => b.iter().all(u8::is_ascii_digit),
        10 => b[5] == b'-' && b[..5].iter().chain(&b[6..]).all(u8::is_ascii_digit),
        _ => false,
    };
    if !well_formed {
        return None;
    }
    Some(
        b[..3]
            .iter()
            .fold(0u16, |n, d| n * 10 + u16::from(d - b'0')),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zips_fit_their_states() {
        assert_eq!(check_zip("IA", "50613"), ZipCheck::Fits);
        assert_eq!(check_zip("ia", "50613-1234"), ZipCheck::Fits);
        assert_eq!(check_zip("NY", "10001"), ZipCheck::Fits);
        assert_eq!(check_zip("NY", "06390"), ZipCheck::Fits);
        assert_eq!(check_zip("MA", "02134"), ZipCheck::Fits);
        assert_eq!(check_zip("TX", "73301"), ZipCheck::Fits);
        assert_eq!(check_zip("CA", "90210"), ZipCheck::Fits);
        assert_eq!(check_zip("PR", "00901"), ZipCheck::Fits);
    }

    #[test]
    fn mismatches_and_malformed_zips_are_told_apart() {
        assert_eq!(check_zip("IA", "90210"), ZipCheck::NotInState);
        assert_eq!(check_zip("CA", "50613"), ZipCheck::NotInState);
        assert_eq!(check_zip("IA", "5061"), ZipCheck::Malformed);
        assert_eq!(check_zip("IA", "5061a"), ZipCheck::Malformed);
        assert_eq!(check_zip("IA", "50613-12"), ZipCheck::Malformed);
        assert_eq!(check_zip("XX", "50613"), ZipCheck::UnknownState);
        assert_eq!(check_zip("Iowa", "50613"), ZipCheck::UnknownState);
    }

    #[test]
    fn ranges_are_well_formed_and_every_state_and_dc_is_listed() {
        for (code, ranges) in STATE_ZIP_PREFIXES {
            assert_eq!(code.len(), 2);
            for (lo, hi) in *ranges {
                assert!(lo <= hi && *hi <= 999, "{code}");
            }
        }
        let states = "AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO \
                      MT NE NV NH NJ NM NY NC ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY";
        let states: Vec<&str> = states.split_whitespace().collect();
        assert_eq!(states.len(), 51);
        for state in states {
            assert!(is_known_state(state), "{state}");
        }
    }
}
