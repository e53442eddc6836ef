// FP8 decode (four codes packed little-endian in one u32), one source for every 8-bit format:
// shift-and-rebias for normals, mantissa × smallest subnormal for subnormals, and the format's
// own specials (E4M3FN: only S.1111.111 is NaN; E5M2: all-ones exponent is inf or NaN).
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

fn NAME(v: u32) -> vec4<f32> {
    return vec4<f32>(
        NAME_byte(v & 0xffu),
        NAME_byte((v >> 8u) & 0xffu),
        NAME_byte((v >> 16u) & 0xffu),
        NAME_byte(v >> 24u),
    );
}
