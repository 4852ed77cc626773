/* Flow hash: Bob Jenkins' lookup3 mixing (public domain) over the 5-tuple. */
#pragma once
#include <linux/types.h>
#include "structs.h"

#define rol32(x, k) (((x) << (k)) | ((x) >> (32 - (k))))

#define jh_mix(a, b, c)                          \
	do {                                     \
		a -= c; a ^= rol32(c, 4);  c += b; \
		b -= a; b ^= rol32(a, 6);  a += c; \
		c -= b; c ^= rol32(b, 8);  b += a; \
		a -= c; a ^= rol32(c, 16); c += b; \
		b -= a; b ^= rol32(a, 19); a += c; \
		c -= b; c ^= rol32(b, 4);  b += a; \
	} while (0)

#define jh_final(a, b, c)                   \
	do {                                \
		c ^= b; c -= rol32(b, 14);  \
		a ^= c; a -= rol32(c, 11);  \
		b ^= a; b -= rol32(a, 25);  \
		c ^= b; c -= rol32(b, 16);  \
		a ^= c; a -= rol32(c, 4);   \
		b ^= a; b -= rol32(a, 14);  \
		c ^= b; c -= rol32(b, 24);  \
	} while (0)

static __always_inline __u32 flow_hash(const struct flow_key *k)
{
	__u32 a, b, c;

	a = b = c = FLOW_HASH_SEED + sizeof(*k);
	a += k->src[0]; b += k->src[1]; c += k->src[2];
	jh_mix(a, b, c);
	a += k->src[3]; b += k->dst[0]; c += k->dst[1];
	jh_mix(a, b, c);
	a += k->dst[2]; b += k->dst[3];
	c += ((__u32)k->sport << 16) | k->dport;
	jh_mix(a, b, c);
	a += k->proto;
	jh_final(a, b, c);
	return c;
}
