/* Checksums. */
#pragma once
#include <linux/types.h>

static __always_inline __u16 csum_fold32(__u64 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

/* Header checksum of a 20-byte IPv4 header without options whose check field
 * is zero. */
static __always_inline __u16 ipv4_hdr_csum(const void *hdr)
{
	const __u16 *w = hdr;
	__u64 sum = 0;
#pragma unroll
	for (int i = 0; i < 10; i++)
		sum += w[i];
	return csum_fold32(sum);
}
