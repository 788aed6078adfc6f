//! Deterministic validator keys and a local genesis, for tests and examples (here and in the
//! `lanes` binary's tests).

use lanes_types::{
    Genesis, GenesisAsset, GenesisBalance, ProtocolParams, SecretKey, ValidatorInfo,
};

/// Four validator keys derived from `label`.
pub fn keys(label: &str) -> Vec<SecretKey> {
    (0..4)
        .map(|i| SecretKey::from_label(&format!("{label}-{i}")))
        .collect()
}

/// A valid genesis for `keys` on loopback ports from 7000, with one funded account (the first
/// key's) that is also the oracle.
pub fn genesis(chain_id: &str, keys: &[SecretKey]) -> Genesis {
    let owner = keys[0].public_key().address();
    Genesis {
        chain_id: chain_id.into(),
        genesis_time_ms: 0,
        validators: ValidatorInfo::local(keys, 7000),
        assets: vec![GenesisAsset {
            symbol: "LANE".into(),
            balances: vec![GenesisBalance {
                account: owner,
                amount: 1,
            }],
        }],
        params: ProtocolParams::local_defaults(owner),
    }
}
