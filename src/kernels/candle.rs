//! candle-core as the peer backend.
