// The C++ harness around the Verilated TLB unit (see testbench/verilator_backend.py).
//
// geometry.h is generated per geometry: the port accessors and the tables of the trace
// format (op kinds, expect keys, CSR and exception names), all taken from the Python code.
//
//   sim CPUS            serve requests on stdin (the pipe protocol of verilator_backend.py)
//   sim --replay TRACE  parse a JSON Lines trace, run it (the CPUs on threads of their own),
//                       check every expect; print one line:
//                         ok OPS MET CPUS CYCLES
//                         fail INDEX LINE MET CPUS PRESENT V0 V1 ... (the failing op's result)
//                         fallback LINE  (a line this parser does not take: Python decides)
#include "Vsimtop.h"
#include "Vsimtop___024root.h"
#include "verilated.h"
#include "geometry.h"
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

using Top = Vsimtop;

// The falling edge: nothing in the unit acts on it and no input changes with it, so all an
// eval() would do is note clk = 0 (for the next rising edge to be seen) and evaluate the logic
// behind the inputs again, unchanged. Where the model keeps that note in a member of a known
// name (Verilator 5.0xx), it is written directly; any other Verilator gets the eval().
template <class Root>
static auto fall(Top* t, Root* root, int) -> decltype(root->__Vtrigrprev__TOP__clk = 0, void()) {
  t->clk = 0; root->__Vtrigrprev__TOP__clk = 0;
}
template <class Root>
static void fall(Top* t, Root*, long) { t->clk = 0; t->eval(); }

// every rising edge on this thread, counted for the replay's report
static thread_local uint64_t edges = 0;

static void tick(Top* t) { t->clk = 1; t->eval(); fall(t, t->rootp, 0); edges++; }

static void reset(Top* t) {
  t->rst = 1; tick(t); t->rst = 0; t->csr_we = 0; t->insn_valid = 0; t->eval();
}

// ---- driving the unit, cycle by cycle, exactly as the pysim backend does ------------------

static uint64_t csr_read(Top* t, uint32_t addr) {
  t->csr_addr = addr; t->eval(); return t->csr_rdata;
}

// Each eval() is a pass over all the logic that hangs off an input, so the harness calls it
// only where an output is read next: inputs set before a tick are taken by the tick's own
// eval, inputs cleared after a tick by the next one.
static void csr_write(Top* t, uint32_t addr, uint64_t value) {
  t->csr_addr = addr; t->csr_wdata = value; t->csr_we = 1; tick(t);
  t->csr_we = 0;
}

struct InsnOut { uint64_t cycles, illegal, slot, multi_hit; };

static InsnOut insn(Top* t, uint32_t op, uint32_t inv_op, uint32_t asid, uint64_t va) {
  t->insn_op = op; t->insn_inv_op = inv_op; t->insn_asid = asid; t->insn_va = va;
  t->insn_valid = 1; t->eval();
  InsnOut o{0, 0, 0, 0};
  for (;;) {
    bool done = t->insn_done;
    if (done) { o.illegal = t->insn_illegal; o.slot = t->insn_slot; }
    tick(t); o.cycles++;
    // after the accept no output depends on insn_valid: no eval() needed for the clear
    if (o.cycles == 1) t->insn_valid = 0;
    if (done || o.cycles > (1u << 18)) break;
  }
  o.multi_hit = t->multi_hit;
  return o;
}

struct LookupOut { uint64_t exc, pa, mat, multi_hit; };

static LookupOut lookup(Top* t, uint32_t port, uint32_t access, bool effect, uint64_t va) {
  LookupOut o;
  set_lookup(t, port, va, access, effect, 1); tick(t);
  set_lookup(t, port, va, access, effect, 0);
  for (int i = 1; i < LOOKUP_LATENCY; i++) tick(t);
  get_lookup(t, port, &o.exc, &o.pa, &o.mat);
  tick(t);
  for (int i = 1; i < EXCEPTION_TICKS && !t->csr_ready; i++) tick(t);  // its CSR writes land
  o.multi_hit = t->multi_hit;
  return o;
}

// ---- one trace op and its result -----------------------------------------------------------

struct Op {
  uint8_t kind, cpu, a, b;  // kind: index into OP_NAMES; a: port; b: access or inv_op
  uint32_t c;               // asid
  uint64_t x, y;            // csr address / va, value
  uint32_t line, expect_at; // expects: EXPECTS[expect_at ..], expect_n of them, in order
  uint8_t expect_n;
};
struct Expect { uint8_t key; uint64_t value; };

struct Result {
  uint32_t present = 0;
  uint64_t v[N_KEYS] = {};
  void set(int key, uint64_t value) { present |= 1u << key; v[key] = value; }
};

static Result run(Top* t, const Op& op) {
  Result r;
  switch (OP_CLASS[op.kind]) {
  case CLASS_CSRRD: r.set(KEY_VALUE, csr_read(t, op.x)); break;
  case CLASS_CSRWR: csr_write(t, op.x, op.y); break;
  case CLASS_TRANSLATE: {
    LookupOut o = lookup(t, op.a, op.b, true, op.x);
    r.set(KEY_EXC, o.exc);
    if (o.exc == 0) { r.set(KEY_PA, o.pa); r.set(KEY_MAT, o.mat); }
    r.set(KEY_MULTI_HIT, o.multi_hit);
    break;
  }
  default: {
    InsnOut o = insn(t, OP_INSN[op.kind], op.b, op.c, op.x);
    if (!OP_HAS_RESULT[op.kind]) break;
    r.set(KEY_ILLEGAL, o.illegal); r.set(KEY_MULTI_HIT, o.multi_hit);
    if (op.kind == OP_TLBFILL && !o.illegal) r.set(KEY_SLOT, o.slot);
    for (int k = 0; k < N_KEYS; k++)
      if (OP_OUTPUT_CSRS[op.kind] >> k & 1) r.set(k, csr_read(t, KEY_CSR_ADDR[k]));
  }
  }
  return r;
}

// ---- a JSON Lines trace parser for the trace format -----------------------------------------
// It takes the common, plain form of every line and leaves anything else (escapes, floats,
// an error of any kind) to the Python parser, which is the authority on the format.

struct Value {
  enum Type { NONE, INT, STR, BOOL, OBJ } type = NONE;
  uint64_t num = 0;
  const char* s = nullptr; size_t len = 0;
  std::string_view str() const { return {s, len}; }
};

// a table of names (from geometry.h), looked up by string
struct Names {
  std::vector<std::string_view> names;
  Names(const char* const* table, int count) : names(table, table + count) {}
  int find(std::string_view s) const {
    for (size_t i = 0; i < names.size(); i++) if (names[i] == s) return i;
    return -1;
  }
  int find(const Value& v) const { return v.type == Value::STR ? find(v.str()) : -1; }
};
static const Names OP_TABLE(OP_NAMES, N_OPS), FIELD_TABLE(FIELD_NAMES, N_FIELDS),
    KEY_TABLE(KEY_NAMES, N_KEYS), CSR_TABLE(CSR_NAMES, N_CSRS), EXC_TABLE(EXC_NAMES, N_EXCS),
    ACCESS_TABLE(ACCESS_NAMES, 3);

struct LineParser {
  const char *p, *end;
  bool ws() { while (p < end && (*p == ' ' || *p == '\t')) p++; return p < end; }
  bool lit(char c) { if (!ws() || *p != c) return false; p++; return true; }
  bool string(const char** s, size_t* len) {
    if (!lit('"')) return false;
    *s = p;
    // printable ASCII only (no DEL): the replay loop checks comment lines alone, so a string
    // refuses what Python's reading of a line might treat otherwise, and Python decides
    while (p < end && *p != '"') {
      unsigned char c = *p;
      if (c == '\\' || c < 0x20 || c >= 0x7f) return false;
      p++;
    }
    if (p == end) return false;
    *len = p - *s; p++;
    return true;
  }
  bool value(Value* v, bool allow_obj) {
    if (!ws()) return false;
    if (*p == '"') { v->type = Value::STR; return string(&v->s, &v->len); }
    if (*p >= '0' && *p <= '9') {
      if (*p == '0' && p + 1 < end && p[1] >= '0' && p[1] <= '9') return false;
      uint64_t n = 0;
      while (p < end && *p >= '0' && *p <= '9') {
        uint64_t d = *p++ - '0';
        if (n > (UINT64_MAX - d) / 10) return false;
        n = n * 10 + d;
      }
      if (p < end && (*p == '.' || *p == 'e' || *p == 'E')) return false;
      v->type = Value::INT; v->num = n; return true;
    }
    if (end - p >= 4 && !memcmp(p, "true", 4)) { p += 4; v->type = Value::BOOL; v->num = 1; return true; }
    if (end - p >= 5 && !memcmp(p, "false", 5)) { p += 5; v->type = Value::BOOL; v->num = 0; return true; }
    if (*p == '{' && allow_obj) { v->type = Value::OBJ; v->s = p; return true; }
    return false;
  }
};

// A number field: a JSON integer or a "0x..." string that fits in ``bits``.
static bool number(const Value& v, int bits, uint64_t* out) {
  uint64_t n = 0;
  if (v.type == Value::INT) {
    n = v.num;
  } else if (v.type == Value::STR) {
    if (v.len < 3 || v.s[0] != '0' || (v.s[1] != 'x' && v.s[1] != 'X')) return false;
    for (size_t i = 2; i < v.len; i++) {
      char c = v.s[i];
      int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
            : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
      if (d < 0 || n >> 60) return false;
      n = n << 4 | d;
    }
  } else {
    return false;
  }
  if (bits < 64 && n >> bits) return false;
  *out = n;
  return true;
}

// Parse one line (not blank, not a comment) into ``op``; false when Python must decide.
static bool parse_line(LineParser& lp, Op& op, std::vector<Expect>& expects, int* max_cpu) {
  const char* keys[16]; size_t key_lens[16]; Value vals[16];
  int n = 0;
  if (!lp.lit('{')) return false;
  if (!lp.lit('}')) {
    for (;;) {
      if (n == 16 || !lp.string(&keys[n], &key_lens[n]) || !lp.lit(':') ||
          !lp.value(&vals[n], true)) return false;
      if (vals[n].type == Value::OBJ) {   // expect: skip over it now, parse it below
        int depth = 0;
        for (; lp.p < lp.end; lp.p++) {
          if (*lp.p == '"') { const char* s; size_t l; if (!lp.string(&s, &l)) return false; lp.p--; }
          else if (*lp.p == '{') { if (++depth > 16) return false; }   // trace.MAX_DEPTH
          else if (*lp.p == '}' && --depth == 0) { lp.p++; break; }
          else if (*lp.p == '[') return false;
        }
        if (depth) return false;
        vals[n].len = lp.p - vals[n].s;
      }
      n++;
      if (lp.lit('}')) break;
      if (!lp.lit(',')) return false;
    }
  }
  if (lp.ws()) return false;           // something after the object
  int field_of[16]; uint32_t seen = 0;
  for (int i = 0; i < n; i++) {
    int f = FIELD_TABLE.find(std::string_view(keys[i], key_lens[i]));
    if (f < 0 || (seen >> f & 1)) return false;   // unknown or repeated
    seen |= 1u << f; field_of[i] = f;
  }
  if (!(seen >> FIELD_OP & 1)) return false;
  int kind = -1;
  for (int i = 0; i < n; i++) if (field_of[i] == FIELD_OP) kind = OP_TABLE.find(vals[i]);
  if (kind < 0) return false;
  if ((seen & ~OP_FIELDS_ALLOWED[kind]) || (OP_FIELDS_REQUIRED[kind] & ~seen)) return false;
  op = Op{};
  op.kind = kind; op.line = 0; op.expect_at = expects.size(); op.expect_n = 0;
  const Value* expect = nullptr;
  for (int i = 0; i < n; i++) {
    const Value& v = vals[i];
    uint64_t x;
    switch (field_of[i]) {
    case FIELD_OP: break;
    case FIELD_CSR: { int c = CSR_TABLE.find(v); if (c < 0) return false; op.x = CSR_ADDRS[c]; break; }
    case FIELD_VALUE: if (!number(v, GRLEN, &op.y)) return false; break;
    case FIELD_VA: if (!number(v, GRLEN, &op.x)) return false; break;
    case FIELD_ASID: if (!number(v, 10, &x)) return false; op.c = x; break;
    case FIELD_INV_OP: if (!number(v, 5, &x)) return false; op.b = x; break;
    case FIELD_ACCESS: { int a = ACCESS_TABLE.find(v); if (a < 0) return false; op.b = ACCESS_CODES[a]; break; }
    case FIELD_PORT: if (!number(v, 16, &x) || x >= LOOKUP_PORTS) return false; op.a = x; break;
    case FIELD_CPU: if (!number(v, 16, &x) || x >= MAX_CPUS) return false; op.cpu = x; break;
    case FIELD_EXPECT: expect = &v; break;
    default: return false;
    }
  }
  if (*max_cpu < op.cpu) *max_cpu = op.cpu;
  if (!expect) return true;
  if (OP_CLASS[kind] == CLASS_CSRRD) {
    uint64_t want;
    if (!number(*expect, GRLEN, &want)) return false;
    expects.push_back({KEY_VALUE, want}); op.expect_n = 1;
    return true;
  }
  if (expect->type != Value::OBJ || !OP_EXPECT_KEYS[kind]) return false;
  LineParser inner{expect->s, expect->s + expect->len};
  inner.lit('{');
  if (inner.lit('}')) return true;
  uint32_t keys_seen = 0;
  for (;;) {
    const char* s; size_t len; Value v;
    if (!inner.string(&s, &len) || !inner.lit(':') || !inner.value(&v, false)) return false;
    int key = KEY_TABLE.find(std::string_view(s, len));
    if (key < 0 || !(OP_EXPECT_KEYS[kind] >> key & 1) || (keys_seen >> key & 1)) return false;
    keys_seen |= 1u << key;
    uint64_t want;
    if (BOOL_KEYS >> key & 1) {
      if (v.type != Value::BOOL) return false;
      want = v.num;
    } else if (key == KEY_EXC) {
      int e = EXC_TABLE.find(v);
      if (e < 0) return false;
      want = e;
    } else if (!number(v, GRLEN, &want)) {
      return false;
    }
    expects.push_back({(uint8_t)key, want}); op.expect_n++;
    if (inner.lit('}')) break;
    if (!inner.lit(',')) return false;
  }
  return !inner.ws();
}

static int replay(const char* path) {
  FILE* f = fopen(path, "rb");
  if (!f) { printf("fallback 0\n"); return 0; }
  std::string text;
  char buf[1 << 16];
  size_t got;
  // a trace of more than 1 GiB goes to Python's parser, which reads it a line at a time and
  // bounds its ops (trace.MAX_OPS): this one holds the whole text
  const size_t MAX_TEXT = size_t(1) << 30;
  if (!fseek(f, 0, SEEK_END)) {
    long size = ftell(f);
    if (size > 0 && size_t(size) > MAX_TEXT) { fclose(f); printf("fallback 1\n"); return 0; }
    if (size > 0) text.reserve(size);
    rewind(f);
  }
  while ((got = fread(buf, 1, sizeof buf, f)) > 0) {
    text.append(buf, got);
    if (text.size() > MAX_TEXT) { fclose(f); printf("fallback 1\n"); return 0; }
  }
  fclose(f);
  std::vector<Op> ops;
  std::vector<Expect> expects;
  ops.reserve(text.size() / 48);
  expects.reserve(text.size() / 48);
  int max_cpu = 0;
  const char* p = text.data();
  const char* end = p + text.size();
  for (uint32_t line = 1; p < end; line++) {
    const char* eol = static_cast<const char*>(memchr(p, '\n', end - p));
    if (!eol) eol = end;
    const char* stop = eol;
    // a line longer than trace.MAX_LINE_BYTES: Python reports it
    if (eol - p + 1 > 65536) { printf("fallback %u\n", line); return 0; }
    if (stop > p && stop[-1] == '\r') stop--;
    LineParser lp{p, stop};
    // A character Python's splitlines() or strip() would treat otherwise (a control other
    // than tab, DEL, non-ASCII) sends the line to Python. The parser refuses all of them
    // outside comments; a comment is checked here.
    if (lp.ws() && *lp.p == '#') {
      for (const char* q = lp.p; q < stop; q++) {
        unsigned char c = *q;
        if ((c < 0x20 && c != '\t') || c >= 0x7f) { printf("fallback %u\n", line); return 0; }
      }
    } else if (lp.p < stop) {
      Op op;
      if (!parse_line(lp, op, expects, &max_cpu)) { printf("fallback %u\n", line); return 0; }
      op.line = line;
      ops.push_back(op);
    }
    p = eol + 1;
  }
  // Each CPU's unit is touched by its own ops alone, so the CPUs run side by side, on up
  // to one thread per core, each CPU's ops in trace order, each until its first failure
  // (or until it passes an earlier failure of another CPU's). The trace's failure is the
  // lowest-indexed of those; every op before it has run and passed, on whichever CPU.
  int cpus = max_cpu + 1;
  std::vector<std::vector<uint32_t>> mine(cpus);
  for (uint32_t i = 0; i < ops.size(); i++) mine[ops[i].cpu].push_back(i);
  const size_t NONE = SIZE_MAX;
  std::atomic<size_t> first_fail{NONE};
  std::vector<Result> fail_result(cpus);
  std::vector<uint64_t> cycles(cpus, 0);
  auto run_cpu = [&](int cpu) {
    VerilatedContext ctx;                // one per unit: no state shared between threads
    Top top(&ctx);
    reset(&top);
    uint64_t start = edges;
    for (uint32_t i : mine[cpu]) {
      if (i > first_fail.load(std::memory_order_relaxed)) break;
      const Op& op = ops[i];
      Result r = run(&top, op);
      bool ok = true;
      for (int e = 0; e < op.expect_n && ok; e++) {
        const Expect& x = expects[op.expect_at + e];
        ok = (r.present >> x.key & 1) && r.v[x.key] == x.value;
      }
      if (!ok) {
        fail_result[cpu] = r;
        size_t seen = first_fail.load();
        while (i < seen && !first_fail.compare_exchange_weak(seen, i)) {}
        break;
      }
    }
    cycles[cpu] = edges - start;
  };
  unsigned threads = std::min<unsigned>(cpus, std::max(1u, std::thread::hardware_concurrency()));
  auto worker = [&](unsigned k) { for (int cpu = k; cpu < cpus; cpu += threads) run_cpu(cpu); };
  std::vector<std::thread> pool;
  for (unsigned k = 1; k < threads; k++) pool.emplace_back(worker, k);
  worker(0);
  for (auto& t : pool) t.join();

  size_t fail = first_fail.load();
  uint64_t met = 0, total_cycles = 0;
  for (size_t i = 0; i < ops.size() && i < fail; i++) met += ops[i].expect_n;
  if (fail != NONE) {
    const Result& r = fail_result[ops[fail].cpu];
    printf("fail %zu %u %llu %d %u", fail, ops[fail].line, (unsigned long long)met, cpus,
           r.present);
    for (int k = 0; k < N_KEYS; k++) printf(" %llu", (unsigned long long)r.v[k]);
    printf("\n");
    return 0;
  }
  for (uint64_t c : cycles) total_cycles += c;
  printf("ok %zu %llu %d %llu\n", ops.size(), (unsigned long long)met, cpus,
         (unsigned long long)total_cycles);
  return 0;
}

// ---- the pipe protocol ---------------------------------------------------------------------
// request kinds (REQ_*) come from geometry.h, generated from verilator_backend._KIND

struct Req { uint8_t kind, cpu, a, b; uint32_t c; uint64_t x, y; } __attribute__((packed));

// appends the request's words, after a word that counts them
static void serve(Top* t, std::vector<std::unique_ptr<Top>>& tops, const Req& r,
                  std::vector<uint64_t>& out) {
  size_t count_at = out.size();
  out.push_back(0);
  switch (r.kind) {
  case REQ_RESET: for (auto& u : tops) reset(u.get()); break;
  case REQ_CSRRD: out.push_back(csr_read(t, r.x)); break;
  case REQ_CSRWR: csr_write(t, r.x, r.y); break;
  case REQ_INSN: {
    InsnOut o = insn(t, r.a, r.b, r.c, r.x);
    out.insert(out.end(), {o.cycles, o.illegal, o.slot, o.multi_hit});
    break;
  }
  case REQ_TRANSLATE: {
    LookupOut o = lookup(t, r.a, r.b & 3, r.b >> 2 & 1, r.x);
    out.insert(out.end(), {o.exc, o.pa, o.mat, o.multi_hit});
    break;
  }
  case REQ_VALID: get_valid(t, out); break;
  case REQ_SNAPSHOT: get_csrs(t, out); break;
  }
  out[count_at] = out.size() - count_at - 1;
}

int main(int argc, char** argv) {
  if (argc > 2 && !strcmp(argv[1], "--replay")) return replay(argv[2]);
  int cpus = argc > 1 ? atoi(argv[1]) : 1;
  VerilatedContext ctx;
  std::vector<std::unique_ptr<Top>> tops;
  for (int i = 0; i < cpus; i++) { tops.emplace_back(new Top(&ctx)); reset(tops[i].get()); }
  // a batch: a u32 count, then that many requests; answered in one write by a u64 word
  // count, then every request's words
  uint32_t count;
  std::vector<Req> reqs;
  std::vector<uint64_t> out;
  while (fread(&count, sizeof count, 1, stdin) == 1) {
    reqs.resize(count);
    if (count && fread(reqs.data(), sizeof(Req), count, stdin) != count) return 1;
    out.assign(1, 0);
    for (const Req& r : reqs) serve(tops[r.cpu % cpus].get(), tops, r, out);
    out[0] = out.size() - 1;
    fwrite(out.data(), sizeof(uint64_t), out.size(), stdout);
    fflush(stdout);
  }
  return 0;
}
