import { cidrContains, invalidCidrs, ipInAnyCidr, parseCidr, parseIp } from '../../../lambda/core/governance/cidr';

describe('addresses', () => {
  test.each([
    ['192.0.2.1', 4, 0xc0000201n],
    ['0.0.0.0', 4, 0n],
    ['255.255.255.255', 4, 0xffffffffn],
    ['::', 6, 0n],
    ['::1', 6, 1n],
    ['2001:db8::1', 6, 0x20010db8000000000000000000000001n],
    ['2001:DB8:0:0:0:0:0:1', 6, 0x20010db8000000000000000000000001n],
    ['fe80::', 6, 0xfe800000000000000000000000000000n],
    ['1:2:3:4:5:6:7:8', 6, 0x00010002000300040005000600070008n],
    ['1::8', 6, 0x00010000000000000000000000000008n],
    ['::ffff:192.0.2.1', 4, 0xc0000201n],
    ['::ffff:c000:201', 4, 0xc0000201n],
    ['::192.0.2.1', 6, 0xc0000201n],
    ['64:ff9b::192.0.2.1', 6, 0x0064ff9b0000000000000000c0000201n],
    ['1:2:3:4:5:6:1.2.3.4', 6, 0x00010002000300040005000601020304n],
  ])('%s', (text, family, value) => {
    expect(parseIp(text)).toEqual({ family, value });
  });

  test.each(['', '1.2.3', '1.2.3.4.5', '256.1.1.1', '01.2.3.4', '1.2.3.-1', '1:2:3:4:5:6:7:8:9', '1::2::3', '12345::', 'g::1', 'fe80::1%eth0', '::ffff:1.2.3.256', '1:2:3:4:5:6:7:1.2.3.4', ':1', '1:'])(
    '%s is rejected',
    (text) => {
      expect(parseIp(text)).toBeUndefined();
    },
  );
});

describe('CIDR blocks', () => {
  test('host bits below the prefix are cleared; a bare address is a /32 or /128', () => {
    expect(parseCidr('10.1.2.3/8')).toEqual({ family: 4, network: 0x0a000000n, prefix: 8 });
    expect(parseCidr('10.1.2.3')).toEqual({ family: 4, network: 0x0a010203n, prefix: 32 });
    expect(parseCidr('2001:db8::1')).toEqual({ family: 6, network: 0x20010db8000000000000000000000001n, prefix: 128 });
  });

  test('IPv4-mapped IPv6 blocks become IPv4 blocks', () => {
    expect(parseCidr('::ffff:10.0.0.0/104')).toEqual({ family: 4, network: 0x0a000000n, prefix: 8 });
  });

  test.each(['10.0.0.0/33', '10.0.0.0/', '10.0.0.0/08', '2001:db8::/129', 'x/8', '10.0.0.0/-1'])('%s is rejected', (c) => {
    expect(parseCidr(c)).toBeUndefined();
  });

  test.each([
    ['203.0.113.7', '203.0.113.0/24', true],
    ['203.0.114.7', '203.0.113.0/24', false],
    ['203.0.113.7', '0.0.0.0/0', true],
    ['203.0.113.7', '203.0.113.7', true],
    ['203.0.113.8', '203.0.113.7/32', false],
    ['10.255.255.255', '10.0.0.0/8', true],
    ['11.0.0.0', '10.0.0.0/8', false],
    ['2001:db8:abcd::42', '2001:db8::/32', true],
    ['2001:db9::1', '2001:db8::/32', false],
    ['2001:db8::1', '::/0', true],
    ['2001:db8::1', '0.0.0.0/0', false],
    ['192.0.2.1', '::/0', false],
    ['::ffff:203.0.113.7', '203.0.113.0/24', true],
    ['203.0.113.7', '::ffff:203.0.113.0/120', true],
    ['fe80::1', 'fe80::/10', true],
    ['fec0::1', 'fe80::/10', false],
  ])('%s in %s: %s', (ip, cidr, inside) => {
    expect(cidrContains(parseCidr(cidr)!, parseIp(ip)!)).toBe(inside);
    expect(ipInAnyCidr(ip, [cidr])).toBe(inside);
  });

  test('fails closed: unknown source, unparseable source, unparseable rules, empty list', () => {
    expect(ipInAnyCidr(undefined, ['0.0.0.0/0'])).toBe(false);
    expect(ipInAnyCidr('not-an-ip', ['0.0.0.0/0'])).toBe(false);
    expect(ipInAnyCidr('10.0.0.1', ['999.0.0.0/8'])).toBe(false);
    expect(ipInAnyCidr('10.0.0.1', [])).toBe(false);
    expect(ipInAnyCidr('10.0.0.1', ['999.0.0.0/8', '10.0.0.0/8'])).toBe(true);
  });

  test('invalidCidrs lists what the schema regex let through but does not parse', () => {
    expect(invalidCidrs(['10.0.0.0/8', '999.1.1.1', '1.2.3.4/40', '2001:db8::/32', 'ffff::ffff::1'])).toEqual(['999.1.1.1', '1.2.3.4/40', 'ffff::ffff::1']);
  });
});
