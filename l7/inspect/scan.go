package inspect

import (
	"sort"
	"strings"
)

// Byte triggers: which validators a byte can start.
const (
	tEmail  uint8 = 1 << iota // '@'
	tNumber                   // digit, '+', '(' : card, SSN, IPv4, phone
	tIBAN                     // digit: the first check digit, after the country code
	tIPv6                     // ':'
	tInvis                    // UTF-8 lead bytes of invisible characters
)

// keyword kinds: what an Aho-Corasick hit means.
const (
	kwInjection = iota
	kwToken
	kwCloud
	kwPrivateKey
	kwDeny
	kwGate // a custom expression's required literal
)

type keyword struct {
	text string // lower-case
	kind int
	rule int // deny-list rule, custom expression (kwGate) or injection group
}

type denyWord struct {
	word string
	rule int
}

// scanner is the compiled single-pass machine.
type scanner struct {
	trig [256]uint8
	// Aho-Corasick over ASCII-lower-cased bytes, as a dense DFA on byte
	// classes.
	class  [256]uint8
	nclass int
	// col[c][s] is the state after state s reads byte c, with eventBit set
	// when that state ends a keyword or c is a trigger byte. One column
	// per input byte (bytes of one class and trigger-ness share it) keeps
	// the per-byte step to a single dependent load: the column is found
	// from c alone, off the state-to-state chain, and the common step is
	// one load and one bit test. Only class 0 (bytes in no keyword) has
	// bytes of both kinds, so there are about nclass+1 columns.
	col [256][]uint32
	// outs[s] are the keyword ids ending in state s. States are numbered
	// breadth first, so the shallow states that ordinary text keeps
	// returning to share the first cache lines of every column.
	outs     [][]int32
	keywords []keyword
	// maxLen is the longest keyword: after that many bytes from the
	// start state the automaton is in the same state wherever it began.
	maxLen int
}

// eventBit marks, in scanner.col, a step that needs attention: the new
// state ends a keyword, or the byte read starts a validator. The entries
// are unsigned so that loading one zero-extends it for free and the state
// goes straight into the next step's address.
const eventBit = 1 << 31

var lower = func() (t [256]byte) {
	for i := range t {
		t[i] = byte(i)
		if i >= 'A' && i <= 'Z' {
			t[i] = byte(i) + 'a' - 'A'
		}
	}
	return
}()

func newScanner(in *Inspector, deny []denyWord) *scanner {
	sc := &scanner{}
	on := func(d detector) bool { return len(in.byDet[d]) > 0 }
	if on(dEmail) {
		sc.trig['@'] |= tEmail
	}
	if on(dCard) || on(dSSN) || on(dPhone) || on(dIP) {
		for c := '0'; c <= '9'; c++ {
			sc.trig[c] |= tNumber
		}
	}
	if on(dPhone) {
		sc.trig['+'] |= tNumber
		sc.trig['('] |= tNumber
	}
	if on(dIBAN) {
		// An IBAN starts with two capitals and two digits. Triggering on
		// the first digit rather than on every capital keeps the capitals
		// of ordinary prose from being events at all; digits usually are
		// already, for the numeric detectors.
		for c := '0'; c <= '9'; c++ {
			sc.trig[c] |= tIBAN
		}
	}
	if on(dIP) {
		sc.trig[':'] |= tIPv6
	}
	if on(dSmuggling) {
		for _, b := range invisibleLeads {
			sc.trig[b] |= tInvis
		}
	}
	var kws []keyword
	if on(dInjection) {
		for i, k := range injectionKeywords {
			kws = append(kws, keyword{text: k.text, kind: kwInjection, rule: i})
		}
	}
	if on(dAPIToken) {
		for _, t := range tokenPrefixes {
			kws = append(kws, keyword{text: strings.ToLower(t.prefix), kind: kwToken})
		}
	}
	if on(dCloudKey) {
		for _, t := range cloudKeywords {
			kws = append(kws, keyword{text: strings.ToLower(t), kind: kwCloud})
		}
	}
	if on(dPrivateKey) {
		kws = append(kws, keyword{text: "-----begin ", kind: kwPrivateKey})
	}
	for _, d := range deny {
		kws = append(kws, keyword{text: d.word, kind: kwDeny, rule: d.rule})
	}
	for k, c := range in.customs {
		if c.gate != "" {
			kws = append(kws, keyword{text: c.gate, kind: kwGate, rule: k})
		}
	}
	sc.build(kws)
	return sc
}

// build makes the Aho-Corasick DFA.
func (sc *scanner) build(kws []keyword) {
	sc.keywords = kws
	// Byte classes: every byte that occurs in a keyword gets its own class;
	// all others share class 0.
	sc.nclass = 1
	for _, k := range kws {
		sc.maxLen = max(sc.maxLen, len(k.text))
		for i := 0; i < len(k.text); i++ {
			c := k.text[i]
			if sc.class[c] == 0 {
				sc.class[c] = uint8(sc.nclass)
				sc.nclass++
			}
		}
	}
	// Upper-case input maps through lower[] before class[], so only
	// lower-case keyword bytes need classes.
	type node struct {
		next map[uint8]int32
		fail int32
		out  []int32
	}
	nodes := []node{{next: map[uint8]int32{}}}
	for id, k := range kws {
		s := int32(0)
		for i := 0; i < len(k.text); i++ {
			c := sc.class[k.text[i]]
			nx, ok := nodes[s].next[c]
			if !ok {
				nx = int32(len(nodes))
				nodes = append(nodes, node{next: map[uint8]int32{}})
				nodes[s].next[c] = nx
			}
			s = nx
		}
		nodes[s].out = append(nodes[s].out, int32(id))
	}
	delta := make([]int32, len(nodes)*sc.nclass) // [state*nclass+class], trie numbering
	// Breadth-first, so a node's fail target is complete before it; order
	// (the queue, never shortened) becomes the state numbering.
	order := make([]int32, 1, len(nodes))
	for q := 0; q < len(order); q++ {
		s := order[q]
		n := &nodes[s]
		if s != 0 {
			n.out = append(n.out, nodes[n.fail].out...)
		}
		for c := 0; c < sc.nclass; c++ {
			nx, ok := n.next[uint8(c)]
			switch {
			case ok:
				if s == 0 {
					nodes[nx].fail = 0
				} else {
					nodes[nx].fail = delta[int(n.fail)*sc.nclass+c]
				}
				delta[int(s)*sc.nclass+c] = nx
				order = append(order, nx)
			case s == 0:
				delta[c] = 0
			default:
				delta[int(s)*sc.nclass+c] = delta[int(n.fail)*sc.nclass+c]
			}
		}
	}
	id := make([]int32, len(nodes)) // trie number -> breadth-first number
	sc.outs = make([][]int32, len(nodes))
	for k, s := range order {
		id[s] = int32(k)
		sc.outs[k] = nodes[s].out
	}
	// One column per (class, trigger or not) pair that some byte has.
	nst := len(nodes)
	cols := map[int][]uint32{}
	for c := 0; c < 256; c++ {
		cls := int(sc.class[lower[c]])
		trig := sc.trig[c] != 0
		key := cls * 2
		if trig {
			key++
		}
		col, ok := cols[key]
		if !ok {
			col = make([]uint32, nst)
			for _, s := range order {
				to := id[delta[int(s)*sc.nclass+cls]]
				v := uint32(to)
				if trig || len(sc.outs[to]) > 0 {
					v |= eventBit
				}
				col[id[s]] = v
			}
			cols[key] = col
		}
		sc.col[c] = col
	}
}

// cursor is where the validators of one text have got to: triggers inside
// a stretch that a validator already matched are ignored.
type cursor struct {
	numSkip int // numeric triggers inside an already matched number
	ibanTo  int
	ipv6To  int
	invisTo int
}

// Texts of at least splitMin bytes are scanned as several interleaved
// streams (see scan), as long as the streams' overlap, the longest
// keyword, is at most 1/splitOverlapShare of the text.
const (
	// streams is how many stretches are read at once; lockstep is written
	// out for four. Two already hide much of a step's load latency; four
	// were 8-18% faster again on 4 KB of prose.
	streams           = 4
	splitMin          = 256
	splitOverlapShare = 16
	// maxHeldFirst is how many events the first stream collects before
	// they are handled; maxHeld is how many of each later stream's wait
	// for the streams before it to end (a 4 KB prompt of code and JSON has
	// some 60 per quarter). A text with more goes on as fewer streams.
	maxHeldFirst = 64
	maxHeld      = 256
	// maxSplit is the longest text split, so that an offset fits a held.
	maxSplit = 1<<32 - 1
)

// held is an event found by the interleaved loop: the byte at offset i of
// a stream took the automaton to state st.
type held struct {
	i, st uint32
}

// streamState is where the streams of a split scan are.
type streamState struct {
	text  [streams]string // what each stream reads, all as long
	st    [streams]uint32 // each stream's automaton state
	first [maxHeldFirst]held
	later [streams - 1][maxHeld]held // events of streams 1.. at offset ov on
	n     [streams - 1]int           // how many of later are filled
}

// scan finds every match in text, adds them to s.spans and counts them.
//
// One automaton step depends on the one before, so a single pass runs at
// the latency of a load per byte while the core could do several. A long
// text is therefore read as four stretches at once, four independent
// chains in one loop. Each stream after the first starts maxLen bytes
// before its own stretch, from the start state: the state after a byte is
// the longest keyword prefix ending there, at most maxLen bytes long, so
// once a stream has read maxLen bytes its state is exactly the one a
// single pass would have. Events in those first maxLen bytes belong to
// the stream before and are ignored; the events of a later stream are
// held back until the streams before it are done, so every event is
// handled in text order, as by a single pass.
func (in *Inspector) scan(text string, s *scratch) {
	s.keyTo, s.injChecks, s.injDone = 0, 0, false
	var cur cursor
	n, ov := len(text), in.sc.maxLen
	if n < splitMin || ov > n/splitOverlapShare || uint64(n) > maxSplit {
		in.run(text, 0, n, 0, s, &cur)
	} else {
		in.scanSplit(text, ov, s, &cur)
	}
	if len(in.customs) > 0 {
		in.scanCustom(text, s)
	}
}

// scanSplit is scan's interleaved pass over text, with an overlap of ov
// (the longest keyword) bytes; len(text) is at least splitOverlapShare*ov,
// so every stream reads past its overlap.
func (in *Inspector) scanSplit(text string, ov int, s *scratch, cur *cursor) {
	n := len(text)
	l := (n + (streams-1)*ov) / streams // bytes each stream reads
	stride := l - ov                    // stream k reads from k*stride
	ss := &s.streams
	for k := range streams {
		ss.text[k] = text[k*stride : k*stride+l]
		ss.st[k] = 0
	}
	ss.n = [streams - 1]int{}
	i, full := 0, false
	for i < l && !full {
		var nf int
		i, nf, full = in.sc.lockstep(ss, i, ov)
		// The first stream's events come before all the others'.
		for _, e := range ss.first[:nf] {
			in.event(text, int(e.i), e.st, s, cur)
		}
	}
	// Each stream in turn: its held events, then (when a list filled up
	// and the loop stopped early) the rest of its stretch alone. The last
	// also reads the few bytes past streams*stride+ov.
	in.run(text, i, l, ss.st[0], s, cur)
	for k := 1; k < streams; k++ {
		for _, e := range ss.later[k-1][:ss.n[k-1]] {
			in.event(text, k*stride+int(e.i), e.st, s, cur)
		}
		end := k*stride + l
		if k == streams-1 {
			end = n
		}
		in.run(text, k*stride+i, end, ss.st[k], s, cur)
	}
	ss.text = [streams]string{} // hold no reference to the text
}

// lockstep steps the automaton of every stream in ss from offset i until
// the streams end or a list of held events is full, recording the first
// stream's events in ss.first and the others' from offset ov on in
// ss.later. It returns where it stopped, how many events ss.first holds
// and whether a list of ss.later is full. It calls nothing and keeps the
// streams in locals, so the four chains stay in registers.
func (sc *scanner) lockstep(ss *streamState, i, ov int) (int, int, bool) {
	col := &sc.col
	t0 := ss.text[0]
	t1, t2, t3 := ss.text[1][:len(t0)], ss.text[2][:len(t0)], ss.text[3][:len(t0)]
	// Full-width states: a 32-bit one would be zero-extended again before
	// each use as an index, one more instruction on each chain.
	q0, q1, q2, q3 := uint(ss.st[0]), uint(ss.st[1]), uint(ss.st[2]), uint(ss.st[3])
	n0, full := 0, false
	for ; i < len(t0); i++ {
		q0 = uint(col[t0[i]][q0])
		q1 = uint(col[t1[i]][q1])
		q2 = uint(col[t2[i]][q2])
		q3 = uint(col[t3[i]][q3])
		if (q0|q1|q2|q3)&eventBit == 0 {
			continue
		}
		if q0&eventBit != 0 {
			q0 &^= eventBit
			ss.first[n0] = held{i: uint32(i), st: uint32(q0)}
			n0++
		}
		q1 = ss.hold(0, i, ov, q1)
		q2 = ss.hold(1, i, ov, q2)
		q3 = ss.hold(2, i, ov, q3)
		full = ss.n[0] == maxHeld || ss.n[1] == maxHeld || ss.n[2] == maxHeld
		if full || n0 == maxHeldFirst {
			i++
			break
		}
	}
	ss.st = [streams]uint32{uint32(q0), uint32(q1), uint32(q2), uint32(q3)}
	return i, n0, full
}

// hold records an event of later stream k+1 at offset i, if it is one and
// the stream's own stretch has begun, and returns the state without the
// event bit.
func (ss *streamState) hold(k, i, ov int, q uint) uint {
	if q&eventBit == 0 {
		return q
	}
	q &^= eventBit
	if i >= ov {
		ss.later[k][ss.n[k]] = held{i: uint32(i), st: uint32(q)}
		ss.n[k]++
	}
	return q
}

// run steps the automaton from state st over text[from:to] and handles
// every event there; it returns the state at to.
func (in *Inspector) run(text string, from, to int, st uint32, s *scratch, cur *cursor) uint32 {
	col := &in.sc.col
	t := text[:to] // validators still see all of text
	q := uint(st)  // full width, as in lockstep
	for i := from; i < len(t); i++ {
		q = uint(col[t[i]][q])
		if q&eventBit != 0 {
			q &^= eventBit
			in.event(text, i, uint32(q), s, cur)
		}
	}
	return uint32(q)
}

// event handles the byte at text[i], which took the automaton to state st
// and either ended a keyword there or is a trigger byte.
func (in *Inspector) event(text string, i int, st uint32, s *scratch, cur *cursor) {
	sc := in.sc
	for _, id := range sc.outs[st] {
		k := &sc.keywords[id]
		in.onKeyword(text, i+1-len(k.text), k, s)
	}
	t := sc.trig[text[i]]
	if t == 0 {
		return
	}
	if t&tEmail != 0 {
		if a, b, ok := matchEmail(text, i); ok {
			in.add(s, dEmail, a, b)
		}
	}
	if t&tNumber != 0 && i >= cur.numSkip && (i == 0 || !isAlnum(text[i-1]) && text[i-1] != '.') {
		if end := in.matchNumber(text, i, s); end > i {
			cur.numSkip = end
		}
	}
	// The candidate starts two bytes back, at a word's first capital; the
	// candidates come in text order, as the starts would.
	if a := i - 2; t&tIBAN != 0 && a >= cur.ibanTo && a >= 0 && isUpper(text[a]) && isUpper(text[a+1]) &&
		(a == 0 || !isAlnum(text[a-1])) {
		if end, ok := matchIBAN(text, a); ok {
			in.add(s, dIBAN, a, end)
			cur.ibanTo = end
		}
	}
	if t&tIPv6 != 0 && i >= cur.ipv6To {
		a, b, ok := matchIPv6(text, i)
		if ok {
			in.add(s, dIP, a, b)
		}
		// Every ':' of the same candidate gives the same answer.
		cur.ipv6To = b
	}
	if t&tInvis != 0 && i >= cur.invisTo {
		if end, ok := matchInvisible(text, i); ok {
			in.add(s, dSmuggling, i, end)
			cur.invisTo = end
		}
	}
}

// matchNumber tries the numeric detectors at the start of a number and
// returns the end of the first that matched, or -1.
func (in *Inspector) matchNumber(text string, i int, s *scratch) int {
	if !numberCandidate(text, i) {
		return -1
	}
	on := func(d detector) bool { return len(in.byDet[d]) > 0 }
	if on(dCard) {
		if end, ok := matchCard(text, i); ok {
			in.add(s, dCard, i, end)
			return end
		}
	}
	if on(dSSN) {
		if end, ok := matchSSN(text, i); ok {
			in.add(s, dSSN, i, end)
			return end
		}
	}
	if on(dIP) {
		if end, ok := matchIPv4(text, i); ok {
			in.add(s, dIP, i, end)
			return end
		}
	}
	if on(dPhone) {
		if end, ok := matchPhone(text, i); ok {
			in.add(s, dPhone, i, end)
			return end
		}
	}
	return -1
}

// numberCandidate reports whether a numeric detector could match at
// text[i]. A digit run that is followed by none of ' ', '-' and '.' is a
// whole number on its own ("2019,", "1980s"): a card needs more digits
// than it has (or separators), an SSN a '-', an IPv4 address a '.', and a
// phone number one of the three after its first one or three digits. Prose
// has many such numbers; this keeps them from going through all four
// validators.
func numberCandidate(text string, i int) bool {
	if !isDigit(text[i]) {
		return true // '+' and '(' start phone numbers
	}
	end := i + 1
	for end < len(text) && isDigit(text[end]) {
		end++
	}
	if end-i >= minCardDigits {
		return true
	}
	return end < len(text) && (text[end] == ' ' || text[end] == '-' || text[end] == '.')
}

func (in *Inspector) onKeyword(text string, start int, k *keyword, s *scratch) {
	switch k.kind {
	case kwInjection:
		if s.injDone || !nextWordAllowed(text, start+len(k.text), k.rule) {
			return
		}
		// Each check runs an expression; a text packed with trigger
		// phrases gets a budget proportional to its length, and a text
		// that exhausts it is reported as an injection attempt.
		if s.injChecks++; s.injChecks > maxInjectionChecksBase+len(text)/injectionCheckBytes {
			s.injDone = true
			in.add(s, dInjection, start, start+len(k.text))
			return
		}
		if end, ok := matchInjection(text, start); ok {
			in.add(s, dInjection, start, end)
		}
	case kwToken:
		if end, ok := matchToken(text, start); ok {
			in.add(s, dAPIToken, start, end)
		}
	case kwCloud:
		if a, b, ok := matchCloud(text, start); ok {
			in.add(s, dCloudKey, a, b)
		}
	case kwPrivateKey:
		// A BEGIN line inside a key already found is part of it; skipping
		// it also keeps a text of many BEGIN lines from being searched for
		// END once per line.
		if start < s.keyTo {
			return
		}
		if end, ok := matchPrivateKey(text, start); ok {
			in.add(s, dPrivateKey, start, end)
			s.keyTo = end
		}
	case kwGate:
		s.gated[k.rule] = true
	case kwDeny:
		end := start + len(k.text)
		if wordBoundary(text, start, end, k.text) {
			in.addRule(s, k.rule, start, end)
		}
	}
}

// scanCustom runs the custom expressions whose required literal the
// keyword pass saw (or that have none) over text.
func (in *Inspector) scanCustom(text string, s *scratch) {
	for k := range in.customs {
		c := &in.customs[k]
		if c.gate != "" && !s.gated[k] {
			continue
		}
		s.gated[k] = false
		for _, m := range c.re.FindAllStringIndex(text, -1) {
			if m[0] < m[1] { // an empty match has nothing to report or redact
				in.addRule(s, c.rule, m[0], m[1])
			}
		}
	}
}

func (in *Inspector) add(s *scratch, d detector, start, end int) {
	for _, r := range in.byDet[d] {
		in.addRule(s, r, start, end)
	}
}

func (in *Inspector) addRule(s *scratch, r, start, end int) {
	if s.redactOnly && in.rules[r].action != Redact {
		return
	}
	s.counts[r]++
	s.spans = append(s.spans, span{start: start, end: end, rule: r})
}

// rewrite replaces the spans of redact rules. Overlapping spans merge, and
// the marker names the detector of the span that starts first.
func (in *Inspector) rewrite(text string, spans []span) (string, bool) {
	red := spans[:0:0]
	for _, sp := range spans {
		if in.rules[sp.rule].action == Redact {
			red = append(red, sp)
		}
	}
	if len(red) == 0 {
		return text, false
	}
	sort.Slice(red, func(a, b int) bool {
		if red[a].start != red[b].start {
			return red[a].start < red[b].start
		}
		return red[a].end > red[b].end
	})
	var b strings.Builder
	b.Grow(len(text))
	pos := 0
	for k := 0; k < len(red); {
		start, end, det := red[k].start, red[k].end, in.rules[red[k].rule].det
		for k++; k < len(red) && red[k].start < end; k++ {
			end = max(end, red[k].end)
		}
		b.WriteString(text[pos:start])
		if det != dSmuggling {
			b.WriteString("[REDACTED:")
			b.WriteString(detectorNames[det])
			b.WriteByte(']')
		}
		pos = end
	}
	b.WriteString(text[pos:])
	return b.String(), true
}
