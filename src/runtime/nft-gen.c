// SPDX-License-Identifier: Apache-2.0
/*
 * nft-gen: writes, at build time, the nf_tables netlink batch that captures a proxy-mode
 * sandbox's traffic (docs/network.md, "How proxy mode captures traffic"), as a C array the
 * runtime's child sends on a NETLINK_NETFILTER socket. Built with libnftnl and libmnl (Debian's
 * libnftnl-dev, libmnl-dev), like seccomp-gen with libseccomp: the rules never change, the child
 * must not allocate (it shares its parent's memory until it executes the agent), and the CLI is
 * linked statically while Debian ships libmnl only as a shared library. The table is:
 *
 *   table ip agentkernel {
 *     chain out { type nat hook output priority -100;
 *       udp dport 53 redirect to :15053; tcp dport 53 redirect to :15053;
 *       ip daddr != 127.0.0.0/8 meta l4proto tcp redirect to :15001; }
 *     chain filter { type filter hook output priority 0;
 *       ct state established,related accept;
 *       ip daddr != 127.0.0.0/8 reject; }
 *   }
 *
 * Usage: nft-gen OUT.c OUT.h
 */
#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/table.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nf_tables.h>
#include <netinet/in.h>
#include <netinet/ip_icmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/net-capture.h"

#define TABLE "agentkernel"

static struct mnl_nlmsg_batch *batch;
static uint32_t seq = 1;
static unsigned acks;

static void die(const char *what)
{
        fprintf(stderr, "nft-gen: %s\n", what);
        exit(1);
}

static struct nlmsghdr *hdr(uint16_t type)
{
        struct nlmsghdr *nlh = nftnl_nlmsg_build_hdr(
            mnl_nlmsg_batch_current(batch), type, NFPROTO_IPV4,
            NLM_F_CREATE | NLM_F_ACK | (type == NFT_MSG_NEWRULE ? NLM_F_APPEND : 0), seq++);
        acks++;
        return nlh;
}

static void next(void)
{
        if (!mnl_nlmsg_batch_next(batch))
                die("batch buffer too small");
}

static void chain(const char *name, const char *type, int prio)
{
        struct nftnl_chain *c = nftnl_chain_alloc();

        nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, TABLE);
        nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, name);
        nftnl_chain_set_u32(c, NFTNL_CHAIN_HOOKNUM, NF_INET_LOCAL_OUT);
        nftnl_chain_set_s32(c, NFTNL_CHAIN_PRIO, prio);
        nftnl_chain_set_str(c, NFTNL_CHAIN_TYPE, type);
        nftnl_chain_nlmsg_build_payload(hdr(NFT_MSG_NEWCHAIN), c);
        nftnl_chain_free(c);
        next();
}

static void add(struct nftnl_rule *r, struct nftnl_expr *e)
{
        if (!e)
                die("out of memory");
        nftnl_rule_add_expr(r, e);
}

static void meta_l4proto(struct nftnl_rule *r, uint8_t proto)
{
        struct nftnl_expr *e = nftnl_expr_alloc("meta");
        nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, NFT_META_L4PROTO);
        nftnl_expr_set_u32(e, NFTNL_EXPR_META_DREG, NFT_REG_1);
        add(r, e);
        e = nftnl_expr_alloc("cmp");
        nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, NFT_REG_1);
        nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, NFT_CMP_EQ);
        nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, &proto, sizeof(proto));
        add(r, e);
}

static void payload_cmp(struct nftnl_rule *r, uint32_t base, uint32_t off, const void *mask,
                        const void *val, uint32_t len, uint32_t op)
{
        static const uint8_t zero[16];
        struct nftnl_expr *e = nftnl_expr_alloc("payload");

        nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_BASE, base);
        nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, off);
        nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_LEN, len);
        nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_DREG, NFT_REG_1);
        add(r, e);
        if (mask) {
                e = nftnl_expr_alloc("bitwise");
                nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_SREG, NFT_REG_1);
                nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_DREG, NFT_REG_1);
                nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_LEN, len);
                nftnl_expr_set(e, NFTNL_EXPR_BITWISE_MASK, mask, len);
                nftnl_expr_set(e, NFTNL_EXPR_BITWISE_XOR, zero, len);
                add(r, e);
        }
        e = nftnl_expr_alloc("cmp");
        nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, NFT_REG_1);
        nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, op);
        nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, val, len);
        add(r, e);
}

/* ip daddr != 127.0.0.0/8 */
static void not_loopback(struct nftnl_rule *r)
{
        static const uint8_t mask[4] = {255, 0, 0, 0}, net[4] = {127, 0, 0, 0};
        payload_cmp(r, NFT_PAYLOAD_NETWORK_HEADER, 16, mask, net, 4, NFT_CMP_NEQ);
}

static void redirect(struct nftnl_rule *r, uint16_t port)
{
        uint16_t be = htons(port);
        struct nftnl_expr *e = nftnl_expr_alloc("immediate");

        nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_1);
        nftnl_expr_set(e, NFTNL_EXPR_IMM_DATA, &be, sizeof(be));
        add(r, e);
        e = nftnl_expr_alloc("redir");
        nftnl_expr_set_u32(e, NFTNL_EXPR_REDIR_REG_PROTO_MIN, NFT_REG_1);
        add(r, e);
}

static struct nftnl_rule *rule(const char *chain_name)
{
        struct nftnl_rule *r = nftnl_rule_alloc();

        if (!r)
                die("out of memory");
        nftnl_rule_set_str(r, NFTNL_RULE_TABLE, TABLE);
        nftnl_rule_set_str(r, NFTNL_RULE_CHAIN, chain_name);
        nftnl_rule_set_u32(r, NFTNL_RULE_FAMILY, NFPROTO_IPV4);
        return r;
}

static void commit(struct nftnl_rule *r)
{
        nftnl_rule_nlmsg_build_payload(hdr(NFT_MSG_NEWRULE), r);
        nftnl_rule_free(r);
        next();
}

static void dns_redirect(uint8_t proto)
{
        uint16_t be = htons(53);
        struct nftnl_rule *r = rule("out");

        meta_l4proto(r, proto);
        payload_cmp(r, NFT_PAYLOAD_TRANSPORT_HEADER, 2, NULL, &be, 2, NFT_CMP_EQ);
        redirect(r, NET_CAPTURE_DNS_PORT);
        commit(r);
}

int main(int argc, char **argv)
{
        static char buf[1 << 16];
        struct nftnl_table *t;
        struct nftnl_rule *r;
        struct nftnl_expr *e;
        FILE *c, *h;
        const uint8_t *p;
        size_t len;

        if (argc != 3)
                die("usage: nft-gen OUT.c OUT.h");
        batch = mnl_nlmsg_batch_start(buf, sizeof(buf));
        nftnl_batch_begin(mnl_nlmsg_batch_current(batch), seq++);
        next();

        t = nftnl_table_alloc();
        nftnl_table_set_str(t, NFTNL_TABLE_NAME, TABLE);
        nftnl_table_set_u32(t, NFTNL_TABLE_FAMILY, NFPROTO_IPV4);
        nftnl_table_nlmsg_build_payload(hdr(NFT_MSG_NEWTABLE), t);
        nftnl_table_free(t);
        next();
        chain("out", "nat", -100);
        chain("filter", "filter", 0);

        dns_redirect(IPPROTO_UDP);
        dns_redirect(IPPROTO_TCP);
        r = rule("out");
        not_loopback(r);
        meta_l4proto(r, IPPROTO_TCP);
        redirect(r, NET_CAPTURE_TCP_PORT);
        commit(r);

        /* Replies of redirected connections go back to the address the sandbox asked for (on
         * this namespace's AnyIP route, a connection to X comes from X): they belong to
         * connections whose first packet passed, which only a redirected one can have. */
        r = rule("filter");
        {
                uint32_t bits = NF_CT_STATE_BIT(IP_CT_ESTABLISHED) | NF_CT_STATE_BIT(IP_CT_RELATED);
                uint32_t none = 0;
                e = nftnl_expr_alloc("ct");
                nftnl_expr_set_u32(e, NFTNL_EXPR_CT_KEY, NFT_CT_STATE);
                nftnl_expr_set_u32(e, NFTNL_EXPR_CT_DREG, NFT_REG_1);
                add(r, e);
                e = nftnl_expr_alloc("bitwise");
                nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_SREG, NFT_REG_1);
                nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_DREG, NFT_REG_1);
                nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_LEN, 4);
                nftnl_expr_set(e, NFTNL_EXPR_BITWISE_MASK, &bits, 4);
                nftnl_expr_set(e, NFTNL_EXPR_BITWISE_XOR, &none, 4);
                add(r, e);
                e = nftnl_expr_alloc("cmp");
                nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, NFT_REG_1);
                nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, NFT_CMP_NEQ);
                nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, &none, 4);
                add(r, e);
                e = nftnl_expr_alloc("immediate");
                nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
                nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_VERDICT, NF_ACCEPT);
                add(r, e);
        }
        commit(r);

        r = rule("filter");
        not_loopback(r);
        e = nftnl_expr_alloc("reject");
        nftnl_expr_set_u32(e, NFTNL_EXPR_REJECT_TYPE, NFT_REJECT_ICMP_UNREACH);
        nftnl_expr_set_u8(e, NFTNL_EXPR_REJECT_CODE, ICMP_PORT_UNREACH);
        add(r, e);
        commit(r);

        nftnl_batch_end(mnl_nlmsg_batch_current(batch), seq++);
        next();
        len = mnl_nlmsg_batch_size(batch);
        p = mnl_nlmsg_batch_head(batch);

        c = fopen(argv[1], "w");
        h = fopen(argv[2], "w");
        if (!c || !h)
                die("cannot write the output files");
        fprintf(h,
                "/* generated by nft-gen: do not edit */\n#pragma once\n#include <stddef.h>\n"
                "extern const unsigned char nft_capture_batch[];\n"
                "extern const size_t nft_capture_batch_len;\n"
                "#define NFT_CAPTURE_ACKS %uu /* messages that are acknowledged */\n",
                acks);
        fprintf(c, "/* generated by nft-gen: do not edit */\n#include \"nft-batch.h\"\n"
                   "const unsigned char nft_capture_batch[] = {");
        for (size_t i = 0; i < len; i++)
                fprintf(c, "%s0x%02x,", i % 12 ? " " : "\n\t", p[i]);
        fprintf(c, "\n};\nconst size_t nft_capture_batch_len = %zu;\n", len);
        mnl_nlmsg_batch_stop(batch);
        if (fclose(c) || fclose(h))
                die("cannot write the output files");
        return 0;
}
