//! The reads: the node (`/health`, `/status`, `/validators`), the chain (`/tx/{hash}`,
//! `/blocks`, `/block/{id}`) and the state (`/account/{address}`, `/pool/{id}`, `/proof/{key}`).

use super::limits::blocking;
use super::tx::tx_view;
use super::{
    bad, internal, not_found, parse_address, parse_hash, unavailable, ApiResult, AppState,
    HttpError, Shared,
};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use lanes_api::{
    Account, Balance, BlockInfo, BlockSummary, BlockTx, BlocksQuery, CommitCertificateInfo, Pool,
    Position, Stake, StateProof, Status, Validator,
};
use lanes_executor::smt;
use lanes_executor::state::{Key, Value};
use lanes_storage::Store;
use lanes_types::codec::{Decode, Encode};
use lanes_types::{parse_hex, to_hex, Block};

/// `GET /health`: 200 `ok` once there is a head, 503 `starting` before.
pub(super) async fn health(State(s): State<AppState>) -> impl IntoResponse {
    let head = blocking(&s.shared, |s| Ok(s.store.head().ok().flatten())).await;
    match head {
        Ok(Some(_)) => (StatusCode::OK, "ok").into_response(),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "starting").into_response(),
    }
}

/// `GET /status`: the status snapshot with the chain's and this validator's identity.
pub(super) async fn status(State(s): State<AppState>) -> ApiResult<Status> {
    let lowest_block = blocking(&s.shared, |s| Ok(s.store.block_floor().unwrap_or(1))).await?;
    let st = s.status();
    let peers = s
        .net
        .status()
        .peers
        .iter()
        .filter(|p| p.connected_out || p.connected_in)
        .count();
    Ok(Json(Status {
        chain_id: s.genesis.chain_id.clone(),
        min_fee: s.genesis.params.min_fee,
        validator: s.me,
        name: s.genesis.validators[s.me as usize].name.clone(),
        height: st.height,
        block_hash: st.block_hash,
        state_root: st.state_root,
        view: st.view,
        primary: st.primary,
        in_view_change: st.in_view_change,
        certified_height: st.certified_height,
        mempool: st.mempool,
        peers,
        diverged_at: st.diverged_at,
        state_sync: st.state_sync,
        voting: !st.voting_hold.holding(),
        voting_hold_until: st.voting_hold.until(),
        lowest_block,
    }))
}

/// `GET /validators`: the genesis validators and whether QUIC connects us to each.
pub(super) async fn validators(State(s): State<AppState>) -> ApiResult<Vec<Validator>> {
    let net = s.net.status();
    let list = s.genesis.validators.iter().enumerate().map(|(i, v)| {
        let index = i as u32;
        let peer = net.peers.iter().find(|p| p.index == index);
        Validator {
            index,
            name: v.name.clone(),
            public_key: v.public_key.to_string(),
            address: v.address.clone(),
            is_self: index == s.me,
            connected: peer.map(|p| p.connected_out || p.connected_in),
        }
    });
    Ok(Json(list.collect()))
}

fn block_summary(store: &Store, b: &Block) -> Result<BlockSummary, HttpError> {
    let h = b.height();
    let state_root = store.state_root(h).map_err(internal)?;
    let certified = store.checkpoint_certificate(h).map_err(internal)?.is_some();
    Ok(BlockSummary {
        height: h,
        hash: b.hash().to_string(),
        parent: b.header.parent.to_string(),
        view: b.header.view,
        proposer: b.header.proposer,
        timestamp_ms: b.header.timestamp_ms,
        txs: b.txs.len(),
        state_root: state_root.map(|r| r.to_string()),
        certified,
    })
}

/// The most block summaries one `GET /blocks` returns. The store has no header-only read, so
/// each summarised block is decoded whole: the bound keeps the worst case at 32 full blocks.
pub const MAX_BLOCKS_PAGE: usize = 32;

/// `GET /blocks?from=H&limit=N`: up to N (default 20, at most [`MAX_BLOCKS_PAGE`]) block
/// summaries from H (default: the latest N).
pub(super) async fn blocks(
    State(s): State<AppState>,
    Query(r): Query<BlocksQuery>,
) -> ApiResult<Vec<BlockSummary>> {
    let limit = r.limit.unwrap_or(20).clamp(1, MAX_BLOCKS_PAGE);
    let list = blocking(&s.shared, move |s| {
        let head = s.store.head().map_err(internal)?.map_or(0, |h| h.height);
        let from = r
            .from
            .unwrap_or_else(|| head.saturating_sub(limit as u64 - 1))
            .max(1);
        let blocks = s.store.blocks(from, limit).map_err(internal)?;
        blocks.iter().map(|b| block_summary(&s.store, b)).collect()
    });
    Ok(Json(list.await?))
}

/// `GET /block/{height|hash}`: one block with its transactions and certificates.
pub(super) async fn block(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<BlockInfo> {
    blocking(&s.shared, move |s| block_info(s, &id))
        .await
        .map(Json)
}

/// One block with its transactions and certificates, by height or hash.
fn block_info(s: &Shared, id: &str) -> Result<BlockInfo, HttpError> {
    let height = match id.parse::<u64>() {
        Ok(h) => h,
        Err(_) => {
            let hash = parse_hash(id)?;
            s.store
                .block_height(&hash)
                .map_err(internal)?
                .ok_or_else(|| not_found(format!("no block with hash {hash}")))?
        }
    };
    let b = s
        .store
        .block(height)
        .map_err(internal)?
        .ok_or_else(|| not_found(format!("no block at height {height}")))?;
    let transactions = b
        .txs
        .iter()
        .map(|raw| BlockTx {
            hash: lanes_types::tx_hash(raw).to_string(),
            tx: tx_view(raw),
        })
        .collect();
    let signers =
        |sigs: &[lanes_types::ValidatorSignature]| sigs.iter().map(|s| s.validator).collect();
    let commit = s.store.commit_certificate(height).map_err(internal)?;
    let execution = s.store.checkpoint_certificate(height).map_err(internal)?;
    Ok(BlockInfo {
        summary: block_summary(&s.store, &b)?,
        transactions,
        commit_certificate: commit.map(|c| CommitCertificateInfo {
            view: c.view,
            signers: signers(&c.signatures),
        }),
        execution_certificate: execution.as_ref().map(super::tx::certificate_info),
    })
}

pub(super) fn state_get(store: &Store, key: &Key) -> Result<Option<Value>, HttpError> {
    match store.state_get(&key.to_bytes()).map_err(internal)? {
        Some(raw) => Value::from_bytes(&raw).map(Some).map_err(internal),
        None => Ok(None),
    }
}

/// A stored `u64` (absent is 0: the state deletes zero values).
pub(super) fn u64_of(v: Option<Value>) -> u64 {
    match v {
        Some(Value::U64(x)) => x,
        _ => 0,
    }
}

/// `GET /account/{address}`: nonce, balances, lending positions, stakes.
pub(super) async fn account(
    State(s): State<AppState>,
    Path(address): Path<String>,
) -> ApiResult<Account> {
    let addr = parse_address(&address)?;
    blocking(&s.shared, move |s| account_of(s, addr))
        .await
        .map(Json)
}

/// An account's nonce, balances, lending positions and stakes.
fn account_of(s: &Shared, addr: lanes_types::Address) -> Result<Account, HttpError> {
    let st = &s.store;
    let nonce = u64_of(state_get(st, &Key::Nonce(addr))?);
    let assets = u64_of(state_get(st, &Key::NextAssetId)?);
    let mut balances = Vec::new();
    for asset in 0..assets.min(10_000) as u32 {
        let amount = u64_of(state_get(st, &Key::Balance(addr, asset))?);
        if amount > 0 {
            let symbol = match state_get(st, &Key::Asset(asset))? {
                Some(Value::Asset(a)) => a.symbol,
                _ => String::new(),
            };
            balances.push(Balance {
                asset,
                symbol,
                amount,
            });
        }
    }
    let positions = match state_get(st, &Key::Positions(addr))? {
        Some(Value::Positions(ps)) => ps
            .iter()
            .map(|p| Position {
                asset: p.asset,
                supplied: p.supplied,
                borrowed: p.borrowed,
            })
            .collect(),
        _ => Vec::new(),
    };
    let mut stakes = Vec::new();
    for v in &s.genesis.validators {
        let validator = v.public_key.address();
        let amount = u64_of(state_get(st, &Key::Stake(addr, validator))?);
        if amount > 0 {
            stakes.push(Stake {
                validator: validator.to_string(),
                amount,
            });
        }
    }
    Ok(Account {
        address: addr.to_string(),
        nonce,
        balances,
        positions,
        stakes,
    })
}

/// `GET /pool/{id}`.
pub(super) async fn pool(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Pool> {
    let id: u32 = id.parse().map_err(|_| bad(format!("bad pool id {id:?}")))?;
    let pool = blocking(&s.shared, move |s| state_get(&s.store, &Key::Pool(id)));
    match pool.await? {
        Some(Value::Pool(p)) => Ok(Json(Pool {
            id,
            asset_a: p.asset_a,
            asset_b: p.asset_b,
            reserve_a: p.reserve_a,
            reserve_b: p.reserve_b,
            shares: p.shares,
        })),
        _ => Err(not_found(format!("no pool {id}"))),
    }
}

/// `GET /proof/{key}`: a Merkle proof of a state key (hex of the encoded key, or an account
/// address for its native balance) at the latest certified height, with the certificate.
pub(super) async fn proof(
    State(s): State<AppState>,
    Path(key): Path<String>,
) -> ApiResult<StateProof> {
    let key = match parse_address(&key) {
        Ok(addr) => Key::Balance(addr, 0),
        Err(_) => {
            let raw = parse_hex(&key).map_err(|_| bad("key is neither an address nor hex"))?;
            Key::from_bytes(&raw).map_err(|e| bad(format!("bad state key: {e}")))?
        }
    };
    blocking(&s.shared, move |s| proof_of(s, key))
        .await
        .map(Json)
}

/// A Merkle proof of `key` at the latest certified height, with the certificate.
fn proof_of(s: &Shared, key: Key) -> Result<StateProof, HttpError> {
    let head = s
        .store
        .head()
        .map_err(internal)?
        .ok_or_else(|| internal("no state"))?;
    let cert = s
        .store
        .checkpoint_certificate(head.height)
        .map_err(internal)?
        .ok_or_else(|| unavailable("the latest block has no execution certificate yet; retry"))?;
    let value = state_get(&s.store, &key)?;
    let nodes = crate::execute::StoreNodes::new(&s.store);
    let proof = smt::prove(&nodes, head.state_root, &key);
    nodes.fault.check().map_err(internal)?;
    let proof = proof.map_err(internal)?;
    Ok(StateProof {
        height: head.height,
        state_root: head.state_root.to_string(),
        key: to_hex(key.to_bytes()),
        value: value.map(|v| to_hex(v.to_bytes())),
        proof: to_hex(proof.to_bytes()),
        certificate: to_hex(cert.to_bytes()),
    })
}
