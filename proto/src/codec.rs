//! The gRPC codec of every labfleet service: prost encoding (as `tonic_prost::ProstCodec`) with
//! small initial buffers.
//!
//! tonic gives each stream an 8 KiB encode buffer and an 8 KiB decode buffer up front and keeps
//! them for the stream's life. The agent's `Connect` stream lives as long as the agent is
//! connected and carries mostly messages of a few dozen bytes (heartbeats, acks). Here the
//! buffers start at [`BUFFER_BYTES`] and grow only when a message needs it (output chunks, fact
//! documents); with 10,000 idle agents this took the coordinator from 68–70 to 61 KiB per agent
//! (BENCHMARKS.md, fleet scale).

use std::marker::PhantomData;

use prost::Message;
use tonic::codec::{BufferSettings, Codec};
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};

/// Initial size of a stream's encode and decode buffers.
pub const BUFFER_BYTES: usize = 1024;

/// Encoded bytes a stream collects before handing them to the transport (tonic's default).
pub const YIELD_THRESHOLD: usize = 32 * 1024;

/// Prost codec with small buffers; the generated clients and servers use it
/// (`codec_path` in build.rs).
#[derive(Debug, Clone)]
pub struct LeanCodec<T, U> {
    _pd: PhantomData<(T, U)>,
}

impl<T, U> Default for LeanCodec<T, U> {
    fn default() -> Self {
        LeanCodec { _pd: PhantomData }
    }
}

fn settings() -> BufferSettings {
    BufferSettings::new(BUFFER_BYTES, YIELD_THRESHOLD)
}

impl<T, U> Codec for LeanCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = ProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<T, U>::raw_encoder(settings())
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstCodec::<T, U>::raw_decoder(settings())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::codec::Encoder as _;

    #[test]
    fn buffers_start_small_and_keep_tonics_yield_threshold() {
        let mut codec = LeanCodec::<crate::v1::Heartbeat, crate::v1::Heartbeat>::default();
        let enc = codec.encoder();
        let got = enc.buffer_settings();
        let want = BufferSettings::new(BUFFER_BYTES, YIELD_THRESHOLD);
        assert_eq!(format!("{got:?}"), format!("{want:?}"));
    }
}
