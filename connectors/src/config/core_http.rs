//! `[core_http]`: where the built-in `core.http` action may connect, and how much it reads.
//!
//! By default `core.http` refuses every destination that is not a public address:
//! loopback, private (RFC 1918, IPv6 unique local), link-local (cloud metadata services),
//! unspecified, shared, documentation, multicast and the IPv4-mapped forms of these. A
//! network listed in `allow` is reachable all the same.
//!
//! ```toml
//! [core_http]
//! allow = ["127.0.0.1/32", "10.20.0.0/16"]   # networks core.http may reach anyway
//! max_response_bytes = 1048576                # larger responses fail the step
//! ```

use ipnet::IpNet;
use serde::Deserialize;

/// The default of `core_http.max_response_bytes`: 1 MiB.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// `[core_http]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoreHttpConfig {
    /// Networks (CIDR, `127.0.0.1/32`, `fd00::/8`) that `core.http` may reach although they
    /// are not public.
    #[serde(default)]
    pub allow: Vec<IpNet>,
    /// The largest response body `core.http` reads, in bytes.
    #[serde(default = "default_max_response_bytes")]
    pub max_response_bytes: usize,
}

impl Default for CoreHttpConfig {
    fn default() -> Self {
        Self {
            allow: Vec::new(),
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        }
    }
}

fn default_max_response_bytes() -> usize {
    DEFAULT_MAX_RESPONSE_BYTES
}

impl CoreHttpConfig {
    /// Checks the values serde cannot: `(key, message)` of the first problem.
    pub(crate) fn validate(&self) -> Result<(), (String, String)> {
        if self.max_response_bytes == 0 {
            return Err((
                "core_http.max_response_bytes".to_owned(),
                "must be greater than zero".to_owned(),
            ));
        }
        Ok(())
    }
}
