/**
 * GGUF metadata as it reaches JavaScript: one entry per key, in file order.
 *
 * Integers of up to 32 bits and floats become numbers; 64-bit integers become numbers when they
 * are exactly representable, bigints otherwise. Arrays of numbers become the typed array of their
 * element type (so a 150k-entry score table is one allocation), arrays of strings become string[],
 * arrays of bools boolean[], and arrays of arrays nested JS arrays.
 */
export type GgufScalar = number | bigint | boolean | string;
export type GgufTypedArray =
  | Uint8Array | Int8Array | Uint16Array | Int16Array | Uint32Array | Int32Array
  | Float32Array | Float64Array | BigUint64Array | BigInt64Array;
export type GgufValue = GgufScalar | GgufTypedArray | string[] | boolean[] | GgufValue[];
export type GgufMetadata = Record<string, GgufValue>;

/** GGUF value type ids, as stored in the file. */
export const GgufValueType = {
  UINT8: 0, INT8: 1, UINT16: 2, INT16: 3, UINT32: 4, INT32: 5, FLOAT32: 6, BOOL: 7,
  STRING: 8, ARRAY: 9, UINT64: 10, INT64: 11, FLOAT64: 12,
} as const;
export type GgufValueType = (typeof GgufValueType)[keyof typeof GgufValueType];
