/**
 * Documents to and from DynamoDB's wire JSON (the AttributeValue form of the awsJson1_0
 * protocol, binary as base64), with the rules of `@aws-sdk/util-dynamodb`'s `marshall(item,
 * { removeUndefinedValues: true })` and `unmarshall(item)`: undefined members are dropped, numbers
 * beyond Number.MAX_SAFE_INTEGER are refused (a bigint is written exactly), class instances other
 * than binary, Set and Map are refused; on reading, an integer too large for a number comes back as
 * a bigint and binary comes back as a Buffer. The SDK's serde would walk a schema for every value;
 * this is one direct pass (the router's adapters marshal a few small items per request).
 */

/** One attribute value on the wire. */
export type WireValue =
  | { readonly S: string }
  | { readonly N: string }
  | { readonly BOOL: boolean }
  | { readonly NULL: true }
  | { readonly B: string }
  | { readonly L: readonly WireValue[] }
  | { readonly M: WireItem }
  | { readonly SS: readonly string[] }
  | { readonly NS: readonly string[] }
  | { readonly BS: readonly string[] };
export type WireItem = { readonly [name: string]: WireValue };
export type Doc = Record<string, unknown>;

const isBinary = (v: unknown): v is Uint8Array | ArrayBuffer => v instanceof Uint8Array || v instanceof ArrayBuffer;
const base64 = (v: Uint8Array | ArrayBuffer) =>
  (v instanceof ArrayBuffer ? Buffer.from(v) : Buffer.from(v.buffer, v.byteOffset, v.byteLength)).toString('base64');

function numberText(n: number | bigint): string {
  if (typeof n === 'bigint') return n.toString();
  if (!Number.isFinite(n)) throw new TypeError(`Special numeric value ${n} is not allowed`);
  if (n > Number.MAX_SAFE_INTEGER || n < Number.MIN_SAFE_INTEGER) throw new TypeError(`Number ${n} is beyond Number.MAX_SAFE_INTEGER; use a bigint`);
  return String(n);
}

/** One value, or undefined for an undefined value (dropped by the caller). */
export function toWireValue(v: unknown): WireValue | undefined {
  switch (typeof v) {
    case 'undefined':
      return undefined;
    case 'string':
      return { S: v };
    case 'number':
    case 'bigint':
      return { N: numberText(v) };
    case 'boolean':
      return { BOOL: v };
    case 'object':
      break;
    default:
      throw new TypeError(`Unsupported type passed: ${typeof v}`);
  }
  if (v === null) return { NULL: true };
  if (Array.isArray(v)) {
    const L: WireValue[] = [];
    for (const e of v) {
      const w = toWireValue(e);
      if (w !== undefined) L.push(w);
    }
    return { L };
  }
  if (isBinary(v)) return { B: base64(v) };
  if (v instanceof Set) return toWireSet(v);
  if (v instanceof Map) return { M: toWireItem(Object.fromEntries(v)) };
  const proto = Object.getPrototypeOf(v) as unknown;
  if (proto !== Object.prototype && proto !== null) throw new TypeError(`Unsupported type passed: ${(v as object).constructor?.name ?? 'object'}`);
  return { M: toWireItem(v as Doc) };
}

function toWireSet(set: Set<unknown>): WireValue {
  const values = [...set].filter((e) => e !== undefined);
  // util-dynamodb throws too: dropping it would store "no attribute", which can read as "no restriction".
  if (values.length === 0) throw new TypeError('Pass a non-empty set: DynamoDB has no empty set');
  if (values.every((e) => typeof e === 'string')) return { SS: values as string[] };
  if (values.every((e) => typeof e === 'number' || typeof e === 'bigint')) return { NS: values.map((e) => numberText(e as number)) };
  if (values.every(isBinary)) return { BS: values.map((e) => base64(e as Uint8Array)) };
  throw new TypeError('Only sets of strings, numbers or binary are supported');
}

/** An item (or a key, or expression attribute values): its undefined members dropped. */
export function toWireItem(doc: Doc): WireItem {
  const out: Record<string, WireValue> = {};
  for (const k in doc) {
    if (!Object.prototype.hasOwnProperty.call(doc, k)) continue;
    const w = toWireValue(doc[k]);
    if (w === undefined) continue;
    // An attribute named __proto__ is sent as one, not made the wire item's prototype (and lost).
    if (k === '__proto__') Object.defineProperty(out, k, { value: w, enumerable: true, writable: true, configurable: true });
    else out[k] = w;
  }
  return out;
}

function fromWireNumber(text: string): number | bigint {
  const n = Number(text);
  if (Math.abs(n) <= Number.MAX_SAFE_INTEGER) return n;
  // Too large to be exact as a number: an integer becomes a bigint, anything else is refused.
  try {
    return BigInt(text);
  } catch {
    throw new TypeError(`${text} can't be converted to a number or a bigint without losing precision`);
  }
}

export function fromWireValue(w: WireValue): unknown {
  const v = w as Record<string, unknown>;
  if ('S' in v) return v.S;
  if ('N' in v) return fromWireNumber(v.N as string);
  if ('BOOL' in v) return v.BOOL;
  if ('NULL' in v) return null;
  if ('B' in v) return Buffer.from(v.B as string, 'base64');
  if ('M' in v) return fromWireItem(v.M as WireItem);
  if ('L' in v) return (v.L as WireValue[]).map(fromWireValue);
  if ('SS' in v) return new Set(v.SS as string[]);
  if ('NS' in v) return new Set((v.NS as string[]).map(fromWireNumber));
  if ('BS' in v) return new Set((v.BS as string[]).map((b) => Buffer.from(b, 'base64')));
  throw new TypeError(`Unsupported attribute value: ${Object.keys(v).join(',')}`);
}

export function fromWireItem(item: WireItem): Doc {
  const out: Doc = {};
  for (const k in item) {
    if (!Object.prototype.hasOwnProperty.call(item, k)) continue;
    // An attribute named __proto__ stays an attribute, never the document's prototype.
    if (k === '__proto__') Object.defineProperty(out, k, { value: fromWireValue(item[k]), enumerable: true, writable: true, configurable: true });
    else out[k] = fromWireValue(item[k]);
  }
  return out;
}
