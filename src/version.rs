//! Version facts the daemon reports: its own release, and the Engine API range it speaks.

/// This daemon's release, reported as the engine version (`Server: Docker/<version>`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The git commit the binary was built from (set by `build.rs`, `unknown` outside git).
pub const GIT_COMMIT: &str = env!("DOCKERD_GIT_COMMIT");

/// The newest Engine API version served (Docker 28.x speaks 1.51).
pub const API_VERSION: ApiVersion = ApiVersion::new(1, 51);

/// The oldest Engine API version accepted, as Docker Engine 25+.
pub const MIN_API_VERSION: ApiVersion = ApiVersion::new(1, 24);

/// An Engine API version, `major.minor`, ordered numerically (1.9 < 1.24).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ApiVersion {
    pub major: u16,
    pub minor: u16,
}

impl ApiVersion {
    pub const fn new(major: u16, minor: u16) -> Self {
        ApiVersion { major, minor }
    }

    /// Parses `1.51`; anything else (`1`, `1.x`, `v1.51`) is `None`.
    pub fn parse(s: &str) -> Option<Self> {
        let (major, minor) = s.split_once('.')?;
        let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
        if !digits(major) || !digits(minor) {
            return None;
        }
        Some(ApiVersion::new(major.parse().ok()?, minor.parse().ok()?))
    }
}

impl std::fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_orders_numerically() {
        assert_eq!(ApiVersion::parse("1.51"), Some(ApiVersion::new(1, 51)));
        assert!(ApiVersion::parse("1.9").unwrap() < ApiVersion::parse("1.24").unwrap());
        assert_eq!(ApiVersion::parse("1"), None);
        assert_eq!(ApiVersion::parse("1.x"), None);
        assert_eq!(ApiVersion::parse("1.-2"), None);
    }
}
