package loader

import ("errors"; "testing"; "github.com/cilium/ebpf")

func TestSmokeLoad(t *testing.T) {
	var o balancerObjects
	if err := loadBalancerObjects(&o, nil); err != nil {
		var ve *ebpf.VerifierError; if errors.As(err, &ve) { t.Fatalf("%+v", ve) }; t.Fatal(err)
	}
	o.Close()
	var d decapObjects
	if err := loadDecapObjects(&d, nil); err != nil {
		var ve *ebpf.VerifierError; if errors.As(err, &ve) { t.Fatalf("%+v", ve) }; t.Fatal(err)
	}
	d.Close()
}
