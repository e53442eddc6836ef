// FP8 decode (four codes packed little-endian in one u32), one source for every 8-bit format.
//
// Fast path, for words without specials: an FP8 code is a narrower f16. Moving sign and
// magnitude into f16 positions turns two codes into an f16 pair at once (the even bytes, then the
// odd ones), the hardware converts the pair to f32 (unpack2x16float, subnormals included), and one
// exact power-of-two multiply (2^(15 − bias)) fixes the exponent bias. About six operations per
// code instead of fifteen: on a GPU the FP8 GEMV is bound by decode work, not by bytes.
//
// Slow path, for a word holding a special (E4M3FN: only S.1111.111 is NaN; E5M2: the all-ones
// exponent is inf or NaN): per byte, shift-and-rebias for normals, mantissa × smallest subnormal
// for subnormals, and the special built bit for bit as the CPU codec builds it.
fn NAME_byte(c: u32) -> f32 {
    let mag = c & 0x7fu;
    let normal = bitcast<f32>((mag << MAN_SHIFTu) + REBIASu);
    let subnormal = f32(mag) * MIN_SUBNORMALf;
    var v = select(normal, subnormal, mag <= MAN_MASKu);
    // inf when the mantissa is zero, NaN otherwise (built at run time: no inf constants in WGSL).
    let special = bitcast<f32>(0x7f800000u | ((mag & MAN_MASKu) << MAN_SHIFTu));
    v = select(v, special, IS_SPECIAL);
    return bitcast<f32>(bitcast<u32>(v) | ((c & 0x80u) << 24u));
}

// Two codes in the low bytes of each 16-bit half → the f16 pair with their bits.
fn NAME_f16_pair(p: u32) -> vec2<f32> {
    return unpack2x16float(((p & 0x00800080u) << 8u) | ((p & 0x007f007fu) << F16_SHIFTu)) * F16_FACTORf;
}

fn NAME(v: u32) -> vec4<f32> {
    // A byte's magnitude reaches the first special code iff adding SPECIAL_ADD sets its top bit
    // (no carries between bytes: magnitudes are at most 0x7f).
    if ((((v & 0x7f7f7f7fu) + SPECIAL_ADDu) & 0x80808080u) != 0u) {
        return vec4<f32>(
            NAME_byte(v & 0xffu),
            NAME_byte((v >> 8u) & 0xffu),
            NAME_byte((v >> 16u) & 0xffu),
            NAME_byte(v >> 24u),
        );
    }
    let even = NAME_f16_pair(v & 0x00ff00ffu);
    let odd = NAME_f16_pair((v >> 8u) & 0x00ff00ffu);
    return vec4<f32>(even.x, odd.x, even.y, odd.y);
}
