/**
 * IPv4 and IPv6 addresses and CIDR blocks, parsed strictly (no octal, no zone ids) into bigints.
 * IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) and blocks inside `::ffff:0:0/96` are treated as
 * the IPv4 addresses they carry, so either spelling of the caller matches either spelling of a rule.
 */

export interface IpAddress {
  readonly family: 4 | 6;
  readonly value: bigint;
}

export interface CidrBlock {
  readonly family: 4 | 6;
  /** Network address (host bits cleared). */
  readonly network: bigint;
  readonly prefix: number;
}

const BITS = { 4: 32, 6: 128 } as const;

function parseIpv4(s: string): bigint | undefined {
  const parts = s.split('.');
  if (parts.length !== 4) return undefined;
  let value = 0n;
  for (const part of parts) {
    if (!/^(0|[1-9]\d{0,2})$/.test(part)) return undefined;
    const n = Number(part);
    if (n > 255) return undefined;
    value = (value << 8n) | BigInt(n);
  }
  return value;
}

function parseIpv6(s: string): bigint | undefined {
  if (s.length === 0 || s.length > 45 || !/^[0-9a-fA-F:.]+$/.test(s)) return undefined;
  let tail: bigint | undefined;
  let text = s;
  // An embedded IPv4 tail (`::ffff:192.0.2.1`) stands for the last two groups.
  if (text.includes('.')) {
    const lastColon = text.lastIndexOf(':');
    tail = parseIpv4(text.slice(lastColon + 1));
    if (tail === undefined) return undefined;
    text = text.slice(0, lastColon + 1);
    if (!text.endsWith('::')) text = text.slice(0, -1);
  }
  const groupsWanted = tail === undefined ? 8 : 6;
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const toGroups = (h: string): string[] | undefined => {
    if (h === '') return [];
    const g = h.split(':');
    return g.every((x) => /^[0-9a-fA-F]{1,4}$/.test(x)) ? g : undefined;
  };
  const head = toGroups(halves[0]);
  const rest = halves.length === 2 ? toGroups(halves[1]) : [];
  if (!head || !rest) return undefined;
  let groups: string[];
  if (halves.length === 2) {
    const missing = groupsWanted - head.length - rest.length;
    if (missing < 1) return undefined;
    groups = [...head, ...Array<string>(missing).fill('0'), ...rest];
  } else {
    groups = head;
  }
  if (groups.length !== groupsWanted) return undefined;
  let value = 0n;
  for (const g of groups) value = (value << 16n) | BigInt(parseInt(g, 16));
  if (tail !== undefined) value = (value << 32n) | tail;
  return value;
}

/** Parses an IPv4 or IPv6 address; IPv4-mapped IPv6 comes back as IPv4. */
export function parseIp(input: string): IpAddress | undefined {
  const s = input.trim();
  if (s.includes(':')) {
    const v6 = parseIpv6(s);
    if (v6 === undefined) return undefined;
    if (v6 >> 32n === 0xffffn) return { family: 4, value: v6 & 0xffffffffn };
    return { family: 6, value: v6 };
  }
  const v4 = parseIpv4(s);
  return v4 === undefined ? undefined : { family: 4, value: v4 };
}

/** Parses `addr` or `addr/prefix`. Host bits set below the prefix are cleared (`10.1.2.3/8` = `10.0.0.0/8`). */
export function parseCidr(input: string): CidrBlock | undefined {
  const s = input.trim();
  const slash = s.indexOf('/');
  const addrText = slash === -1 ? s : s.slice(0, slash);
  const isV6 = addrText.includes(':');
  const raw = isV6 ? parseIpv6(addrText) : parseIpv4(addrText);
  if (raw === undefined) return undefined;
  let family: 4 | 6 = isV6 ? 6 : 4;
  let prefix: number = BITS[family];
  if (slash !== -1) {
    const p = s.slice(slash + 1);
    if (!/^(0|[1-9]\d{0,2})$/.test(p)) return undefined;
    prefix = Number(p);
    if (prefix > BITS[family]) return undefined;
  }
  let value = raw;
  if (family === 6 && prefix >= 96 && raw >> 32n === 0xffffn) {
    family = 4;
    prefix -= 96;
    value = raw & 0xffffffffn;
  }
  const bits = BigInt(BITS[family]);
  const mask = prefix === 0 ? 0n : ((1n << BigInt(prefix)) - 1n) << (bits - BigInt(prefix));
  return { family, network: value & mask, prefix };
}

export function cidrContains(block: CidrBlock, ip: IpAddress): boolean {
  if (block.family !== ip.family) return false;
  const bits = BigInt(BITS[block.family]);
  const shift = bits - BigInt(block.prefix);
  return ip.value >> shift === block.network >> shift;
}

/** True when `ip` parses and falls in one of `cidrs`. Unparseable rules match nothing (fail closed). */
export function ipInAnyCidr(ip: string | undefined, cidrs: readonly string[]): boolean {
  const addr = ip === undefined ? undefined : parseIp(ip);
  if (!addr) return false;
  return cidrs.some((c) => {
    const block = parseCidr(c);
    return block !== undefined && cidrContains(block, addr);
  });
}

/** The allowlist entries that do not parse (for input validation). */
export function invalidCidrs(cidrs: readonly string[]): string[] {
  return cidrs.filter((c) => parseCidr(c) === undefined);
}
