package loader

// The BPF compiler and strip tool come from $BPF2GO_CC and $BPF2GO_STRIP
// (the Makefile's generate target pins clang-14/llvm-strip-14), so that CI
// can regenerate and compare byte for byte.
//go:generate go tool bpf2go -target bpfel -cflags "-O2 -mcpu=v3 -Wall -Werror -fstandalone-debug -I/usr/include/x86_64-linux-gnu" -type lb_config -type flow_key -type flow_key4 -type vip_key -type vip_meta -type backend -type ct_val -type fw_entry -type fw_val -type lpm4_key -type lpm6_key -type addr_key -type class_limits -type bucket -type est_client -type vip_guard -type traffic_stats balancer ../bpf/balancer.c
//go:generate go tool bpf2go -target bpfel -cflags "-O2 -mcpu=v3 -Wall -Werror -fstandalone-debug -I/usr/include/x86_64-linux-gnu" decap ../bpf/decap.c

// Floor programs for benchmarks only (bpf/floor.c; loader/floor_test.go).
//go:generate go tool bpf2go -target bpfel -cflags "-O2 -mcpu=v3 -Wall -Werror -fstandalone-debug -I/usr/include/x86_64-linux-gnu" floor ../bpf/floor.c
