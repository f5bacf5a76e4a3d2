//! A digest's signature: SHA256withRSA (RSASSA-PKCS1-v1_5 over SHA-256) of the
//! signing string, hex in the object's `x-amz-meta-signature`, the algorithm's
//! name in `x-amz-meta-signature-algorithm`. The RSA arithmetic is RustCrypto's
//! `rsa`; nothing here but the decoding of what S3 hands over.

use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::signature::Verifier;
use rsa::PublicKey as RsaPublicKey;
use sha2::Sha256;

use super::digest::decode_hex;

/// The only algorithm CloudTrail uses (and the only one this verifies).
pub const ALGORITHM: &str = "SHA256withRSA";

/// S3 user-metadata names (without `x-amz-meta-`).
pub const SIGNATURE_METADATA: &str = "signature";
pub const ALGORITHM_METADATA: &str = "signature-algorithm";

/// Why a signature does not verify.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("no x-amz-meta-signature metadata")]
    Missing,
    #[error("signature algorithm {0:?} is not {ALGORITHM}")]
    Algorithm(String),
    #[error("x-amz-meta-signature is not hex")]
    NotHex,
    #[error("signature verification failed")]
    Mismatch,
}

/// Checks the algorithm name (when S3 gave one) and the signature over `signed`.
pub fn verify(
    key: &RsaPublicKey,
    signed: &[u8],
    signature_hex: Option<&str>,
    algorithm: Option<&str>,
) -> Result<(), SignatureError> {
    if let Some(algorithm) = algorithm.filter(|a| *a != ALGORITHM) {
        return Err(SignatureError::Algorithm(algorithm.to_owned()));
    }
    let signature_hex = signature_hex.ok_or(SignatureError::Missing)?;
    let bytes = decode_hex(signature_hex.trim()).ok_or(SignatureError::NotHex)?;
    // A signature of the wrong length is a signature that does not verify.
    let signature = Signature::try_from(bytes.as_slice()).map_err(|_| SignatureError::Mismatch)?;
    VerifyingKey::<Sha256>::new(key.clone())
        .verify(signed, &signature)
        .map_err(|_| SignatureError::Mismatch)
}
