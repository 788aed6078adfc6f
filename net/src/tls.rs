//! TLS identities and peer verification.
//!
//! Every validator presents a self-signed X.509 certificate whose subject public key is its
//! validator ed25519 key. Certificates carry no other meaning: chains, names and validity
//! dates are ignored. A peer is authenticated by two checks:
//!
//! 1. its certificate's key (parsed with a strict DER reader, see [`certificate_key`]) is in
//!    the validator set from genesis, and, for the dialer, is exactly the key of the validator
//!    it meant to reach;
//! 2. the TLS 1.3 `CertificateVerify` signature verifies, through the ring provider, both
//!    against the certificate (`rustls::crypto::verify_tls13_signature`) and against the key
//!    from step 1 (`verify_tls13_signature_with_raw_key`), so the signature is bound to the
//!    very key that was matched against the validator set.
//!
//! Both ends use the ring provider given explicitly (no process-default provider), TLS 1.3
//! only, the ALPN protocol [`ALPN`], no session resumption and no 0-RTT.

use crate::NetError;
use lanes_types::{PublicKey, SecretKey};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{
    CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, SubjectPublicKeyInfoDer,
    UnixTime,
};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The ALPN protocol id both ends require; a peer speaking anything else fails the handshake.
pub const ALPN: &[u8] = b"lanes-net/1";

/// The server name the dialer puts in its TLS session. It is not sent (SNI is off) and not
/// checked: the dialer checks the server's key instead.
pub const SERVER_NAME: &str = "lanes-validator";

/// DER prefix of an Ed25519 `SubjectPublicKeyInfo` (RFC 8410): SEQUENCE { SEQUENCE { OID
/// 1.3.101.112 }, BIT STRING (0 unused bits) }, followed by the 32 key bytes.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// DER prefix of an Ed25519 PKCS#8 v1 `PrivateKeyInfo` (RFC 8410): version 0, the Ed25519
/// algorithm identifier and an OCTET STRING holding the 32-byte seed as an OCTET STRING.
const ED25519_PKCS8_V1_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// The ring provider, chosen explicitly. Building configs from it (never from a process-wide
/// default) keeps start-up deterministic even if another provider is compiled in.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A validator's TLS identity: its self-signed certificate and the matching private key.
pub struct Identity {
    /// The validator key the certificate is for.
    pub public_key: PublicKey,
    /// The self-signed certificate (DER).
    pub cert: CertificateDer<'static>,
    key_pkcs8: Vec<u8>,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Identity({})", self.public_key)
    }
}

impl Identity {
    /// Builds the self-signed certificate for `key` (rcgen, Ed25519).
    pub fn new(key: &SecretKey) -> Result<Identity, NetError> {
        let mut pkcs8 = Vec::with_capacity(48);
        pkcs8.extend_from_slice(&ED25519_PKCS8_V1_PREFIX);
        pkcs8.extend_from_slice(&key.seed());
        let key_pair = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(
            &PrivatePkcs8KeyDer::from(pkcs8.as_slice()),
            &rcgen::PKCS_ED25519,
        )?;
        let public_key = key.public_key();
        if key_pair.public_key_raw() != public_key.0 {
            return Err(NetError::Config(
                "rcgen derived a different public key from the validator seed".into(),
            ));
        }
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(
            rcgen::DnType::CommonName,
            format!("lanes validator {public_key}"),
        );
        let cert = params.self_signed(&key_pair)?;
        let cert = cert.der().clone();
        // Our own parser must read our own certificate back (it is what peers run).
        if certificate_key(&cert) != Some(public_key) {
            return Err(NetError::Config(
                "generated certificate does not carry the validator key".into(),
            ));
        }
        Ok(Identity {
            public_key,
            cert,
            key_pkcs8: pkcs8,
        })
    }

    fn private_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_pkcs8.clone()))
    }
}

/// The rustls server side: presents `identity` and requires a client certificate whose key is
/// one of `allowed`. Every rejection increments `rejections`.
pub fn server_crypto(
    identity: &Identity,
    allowed: Vec<PublicKey>,
    rejections: Arc<AtomicU64>,
) -> Result<rustls::ServerConfig, NetError> {
    let provider = provider();
    let verifier = Arc::new(PeerVerifier {
        expect: Expect::AnyOf(allowed),
        algorithms: provider.signature_verification_algorithms,
        rejections,
    });
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![identity.cert.clone()], identity.private_key())?;
    config.alpn_protocols = vec![ALPN.to_vec()];
    config.max_early_data_size = 0;
    config.send_half_rtt_data = false;
    config.send_tls13_tickets = 0;
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    Ok(config)
}

/// The rustls client side for dialing one validator: presents `identity` and accepts the
/// server only if its certificate key is `expected` (validator `index` at `addr`, both used in
/// logs). Every rejection increments `rejections`.
pub fn client_crypto(
    identity: &Identity,
    expected: PublicKey,
    index: u32,
    addr: SocketAddr,
    rejections: Arc<AtomicU64>,
) -> Result<rustls::ClientConfig, NetError> {
    let provider = provider();
    let verifier = Arc::new(PeerVerifier {
        expect: Expect::Exactly {
            key: expected,
            index,
            addr,
        },
        algorithms: provider.signature_verification_algorithms,
        rejections,
    });
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(vec![identity.cert.clone()], identity.private_key())?;
    config.alpn_protocols = vec![ALPN.to_vec()];
    config.enable_early_data = false;
    config.enable_sni = false;
    config.resumption = rustls::client::Resumption::disabled();
    Ok(config)
}

/// Extracts the Ed25519 key from a certificate's `subjectPublicKeyInfo`, reading the DER
/// strictly (definite minimal lengths, expected tags in order). `None` for anything that is
/// not an X.509 certificate with an Ed25519 key.
pub fn certificate_key(cert: &[u8]) -> Option<PublicKey> {
    let (tag, certificate, rest) = der_next(cert)?;
    if tag != 0x30 || !rest.is_empty() {
        return None;
    }
    let (tag, tbs, _) = der_next(certificate)?;
    if tag != 0x30 {
        return None;
    }
    let mut r = tbs;
    // version [0] EXPLICIT (optional), serialNumber, signature, issuer, validity, subject
    let (tag, _, rest) = der_next(r)?;
    if tag == 0xa0 {
        r = rest;
    }
    for expected in [0x02, 0x30, 0x30, 0x30, 0x30] {
        let (tag, _, rest) = der_next(r)?;
        if tag != expected {
            return None;
        }
        r = rest;
    }
    let spki_len = ED25519_SPKI_PREFIX.len() + 32;
    if r.len() < spki_len || r[..ED25519_SPKI_PREFIX.len()] != ED25519_SPKI_PREFIX {
        return None;
    }
    let mut key = [0u8; 32];
    key.copy_from_slice(&r[ED25519_SPKI_PREFIX.len()..spki_len]);
    Some(PublicKey(key))
}

/// The DER `SubjectPublicKeyInfo` of an Ed25519 key.
fn spki(key: &PublicKey) -> SubjectPublicKeyInfoDer<'static> {
    let mut der = Vec::with_capacity(44);
    der.extend_from_slice(&ED25519_SPKI_PREFIX);
    der.extend_from_slice(&key.0);
    SubjectPublicKeyInfoDer::from(der)
}

/// One DER TLV: (tag, contents, rest). Single-byte tags and definite, minimally encoded
/// lengths of at most four bytes only.
fn der_next(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, input) = input.split_first()?;
    if tag & 0x1f == 0x1f {
        return None;
    }
    let (&first, mut input) = input.split_first()?;
    let len = if first < 0x80 {
        first as usize
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || input.len() < n || input[0] == 0 {
            return None;
        }
        let mut len = 0usize;
        for &b in &input[..n] {
            len = (len << 8) | b as usize;
        }
        if len < 0x80 {
            return None;
        }
        input = &input[n..];
        len
    };
    if input.len() < len {
        return None;
    }
    let (contents, rest) = input.split_at(len);
    Some((tag, contents, rest))
}

/// Whom a verifier accepts.
#[derive(Debug)]
enum Expect {
    /// Server side: any validator of the set (other than ourselves).
    AnyOf(Vec<PublicKey>),
    /// Dialer side: exactly the validator we dialed.
    Exactly {
        key: PublicKey,
        index: u32,
        addr: SocketAddr,
    },
}

/// Why a peer's certificate was refused (carried inside the rustls error, so it reaches the
/// handshake error and the logs).
#[derive(Debug)]
struct Refused(String);

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// The verifier for both directions: pins peer keys from genesis.
struct PeerVerifier {
    expect: Expect,
    algorithms: WebPkiSupportedAlgorithms,
    rejections: Arc<AtomicU64>,
}

impl fmt::Debug for PeerVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerVerifier({:?})", self.expect)
    }
}

impl PeerVerifier {
    fn refuse(&self, why: String) -> rustls::Error {
        self.rejections.fetch_add(1, Ordering::Relaxed);
        if let Expect::Exactly { index, addr, .. } = &self.expect {
            tracing::warn!(peer = %addr, validator = index, "refused server: {why}");
        } else {
            // The accept loop logs the failed handshake with the peer's address.
            tracing::debug!("refused client: {why}");
        }
        rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(Arc::new(
            Refused(why),
        ))))
    }

    fn check_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
    ) -> Result<(), rustls::Error> {
        if !intermediates.is_empty() {
            return Err(self.refuse("peer sent a certificate chain".into()));
        }
        let Some(key) = certificate_key(end_entity) else {
            return Err(self.refuse("peer certificate has no Ed25519 key".into()));
        };
        match &self.expect {
            Expect::AnyOf(allowed) if allowed.contains(&key) => Ok(()),
            Expect::AnyOf(_) => Err(self.refuse(format!("key {key} is not a validator's key"))),
            Expect::Exactly { key: want, .. } if *want == key => Ok(()),
            Expect::Exactly {
                key: want, index, ..
            } => Err(self.refuse(format!("key {key} is not validator {index}'s key {want}"))),
        }
    }

    fn check_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        if dss.scheme != SignatureScheme::ED25519 {
            return Err(self.refuse(format!("handshake signed with {:?}", dss.scheme)));
        }
        let Some(key) = certificate_key(cert) else {
            return Err(self.refuse("peer certificate has no Ed25519 key".into()));
        };
        let checked = rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
            .and_then(|_| {
                rustls::crypto::verify_tls13_signature_with_raw_key(
                    message,
                    &spki(&key),
                    dss,
                    &self.algorithms,
                )
            });
        checked.map_err(|e| self.refuse(format!("bad handshake signature: {e}")))
    }
}

/// The handshake-signature methods both verifier traits share: TLS 1.3 ed25519 only.
macro_rules! handshake_signatures {
    () => {
        fn verify_tls12_signature(
            &self,
            _message: &[u8],
            _cert: &CertificateDer<'_>,
            _dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            Err(self.refuse("TLS 1.2 is not allowed".into()))
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            self.check_signature(message, cert, dss)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            vec![SignatureScheme::ED25519]
        }
    };
}

impl ServerCertVerifier for PeerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.check_cert(end_entity, intermediates)
            .map(|_| ServerCertVerified::assertion())
    }

    handshake_signatures!();
}

impl ClientCertVerifier for PeerVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.check_cert(end_entity, intermediates)
            .map(|_| ClientCertVerified::assertion())
    }

    handshake_signatures!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_carries_the_validator_key() {
        let key = SecretKey::from_label("v0");
        let id = Identity::new(&key).unwrap();
        assert_eq!(certificate_key(&id.cert), Some(key.public_key()));
        // Deterministic keys, but the certificate itself need not be: only the key matters.
        let other = Identity::new(&SecretKey::from_label("v1")).unwrap();
        assert_ne!(certificate_key(&other.cert), Some(key.public_key()));
    }

    #[test]
    fn der_reader_rejects_malformed_input() {
        let id = Identity::new(&SecretKey::from_label("v0")).unwrap();
        let der = id.cert.as_ref();
        for cut in [0, 1, 2, 10, der.len() / 2, der.len() - 1] {
            assert_eq!(certificate_key(&der[..cut]), None, "cut at {cut}");
        }
        let mut trailing = der.to_vec();
        trailing.push(0);
        assert_eq!(certificate_key(&trailing), None);
        assert_eq!(certificate_key(&[0xff; 64]), None);
        // Indefinite and non-minimal lengths are not DER.
        assert_eq!(der_next(&[0x30, 0x80, 0, 0]), None);
        assert_eq!(der_next(&[0x30, 0x81, 0x05, 1, 2, 3, 4, 5]), None);
        assert_eq!(der_next(&[0x30, 0x82, 0x00, 0x80]), None);
        assert_eq!(
            der_next(&[0x02, 0x01, 0x07]),
            Some((0x02, &[7u8][..], &[][..]))
        );
    }

    #[test]
    fn configs_build_with_the_explicit_ring_provider() {
        let id = Identity::new(&SecretKey::from_label("v0")).unwrap();
        let peer = SecretKey::from_label("v1").public_key();
        let counter = Arc::new(AtomicU64::new(0));
        server_crypto(&id, vec![peer], counter.clone()).unwrap();
        client_crypto(&id, peer, 1, "127.0.0.1:1".parse().unwrap(), counter).unwrap();
    }
}
