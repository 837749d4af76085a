// pybind11 binding `sluice._sluice`: Dataset, Loader, Batch and (when built
// with libsluice, SLUICE_PY_NATIVE) Client. Batches are exposed as numpy
// arrays over the C++ buffer (no copy; the array keeps the batch alive).
// Every call that waits or reads runs with the GIL released.
#include <fcntl.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>

#include "prefetch/dataset.h"
#include "prefetch/loader.h"
#ifdef SLUICE_PY_NATIVE
#include "client/sluice_client.h"
#include "prefetch/sluice_dataset.h"
#endif

namespace py = pybind11;
using namespace sluice;
using namespace sluice::prefetch;

namespace {

[[noreturn]] void Throw(const Status& st) {
  switch (st.code()) {
    case Code::kNotFound: throw py::value_error("FileNotFoundError: " + st.ToString());
    case Code::kInvalid: throw py::value_error(st.ToString());
    default: throw std::runtime_error(st.ToString());
  }
}

template <typename T>
T Unwrap(Result<T> r) {
  if (!r.ok()) Throw(r.status());
  return std::move(r).value();
}

// OSError(errno, message) for the Client's file-system calls.
[[noreturn]] void ThrowOs(const Status& st) {
  PyErr_SetObject(PyExc_OSError, py::make_tuple(st.to_errno(), st.ToString()).ptr());
  throw py::error_already_set();
}

template <typename T>
T UnwrapOs(Result<T> r) {
  if (!r.ok()) ThrowOs(r.status());
  return std::move(r).value();
}

#ifdef SLUICE_PY_NATIVE
// A connection to a cluster; datasets and loaders opened through it share it.
struct PyClient {
  std::shared_ptr<client::Client> c;
  std::string cluster;  // as given (config path, host:port, or "" for the local cluster)
};

std::shared_ptr<client::Client> Connect(const std::string& cluster, uint32_t deadline_ms) {
  client::ClientOptions o;
  o.cluster = cluster;
  o.deadline_ms = deadline_ms;
  Result<std::unique_ptr<client::Client>> r = Status(Code::kInternal, "unset");
  {
    py::gil_scoped_release nogil;
    r = client::Client::Connect(o);
  }
  if (!r.ok()) {
    std::string msg = "cannot connect to Sluice cluster '" +
                      (cluster.empty() ? client::DefaultClusterConfig() : cluster) + "': " + r.status().ToString();
    PyErr_SetString(PyExc_ConnectionError, msg.c_str());
    throw py::error_already_set();
  }
  return std::shared_ptr<client::Client>(std::move(r).value());
}
#endif

struct PyDataset {
  std::shared_ptr<const Dataset> ds;
  SampleReaderFactory reader_factory;  // set for data sets read through libsluice
  bool native = false;
};

template <typename T, typename F>
py::array_t<T> Column(const Batch& b, F get) {
  py::array_t<T> out(static_cast<py::ssize_t>(b.samples.size()));
  auto m = out.template mutable_unchecked<1>();
  for (size_t i = 0; i < b.samples.size(); i++) m(static_cast<py::ssize_t>(i)) = get(b.samples[i]);
  return out;
}

py::dict StateToDict(const OrderState& s) {
  py::dict d;
  d["version"] = s.version;
  d["seed"] = s.seed;
  d["epoch"] = s.epoch;
  d["consumed"] = s.consumed;
  d["global_batch"] = s.global_batch;
  d["num_samples"] = s.num_samples;
  return d;
}

OrderState StateFromDict(const py::dict& d) {
  OrderState s;
  for (const char* k : {"version", "seed", "epoch", "consumed", "global_batch", "num_samples"}) {
    if (!d.contains(k)) throw py::value_error(std::string("loader state: missing key '") + k + "'");
  }
  s.version = d["version"].cast<uint32_t>();
  s.seed = d["seed"].cast<uint64_t>();
  s.epoch = d["epoch"].cast<uint64_t>();
  s.consumed = d["consumed"].cast<uint64_t>();
  s.global_batch = d["global_batch"].cast<uint64_t>();
  s.num_samples = d["num_samples"].cast<uint64_t>();
  return s;
}

}  // namespace

PYBIND11_MODULE(_sluice, m) {
  m.doc() = "Sluice shuffled-sample loader (C++ core)";

  py::class_<PyDataset>(m, "Dataset")
      .def(py::init([](const std::string& path, const std::string& format, bool skip_corrupt,
                       const std::string& tar_data_ext, py::object cluster, py::object client) {
             DatasetOptions o;
             o.skip_corrupt = skip_corrupt;
             o.tar_data_ext = tar_data_ext;
             bool native = path.rfind("sluice://", 0) == 0 || !cluster.is_none() || !client.is_none();
             if (!native) {
               Result<std::unique_ptr<Dataset>> r = Status(Code::kInternal, "unset");
               {
                 py::gil_scoped_release nogil;
                 r = OpenDataset(path, format, o);
               }
               return PyDataset{std::shared_ptr<const Dataset>(Unwrap(std::move(r))), nullptr, false};
             }
#ifdef SLUICE_PY_NATIVE
             SluiceUrl url = Unwrap(ParseSluiceUrl(path));
             if (!cluster.is_none() && !client.is_none()) {
               throw py::value_error("give cluster= or client=, not both");
             }
             std::shared_ptr<client::Client> c;
             if (!client.is_none()) {
               const PyClient& pc = client.cast<const PyClient&>();
               if (!url.cluster.empty() && url.cluster != pc.cluster) {
                 throw py::value_error("'" + path + "' names cluster " + url.cluster + " but client= is connected to '" +
                                       pc.cluster + "'");
               }
               c = pc.c;
             } else {
               std::string where = cluster.is_none() ? std::string() : cluster.cast<std::string>();
               if (!url.cluster.empty() && !where.empty() && where != url.cluster) {
                 throw py::value_error("'" + path + "' names cluster " + url.cluster + " but cluster='" + where + "'");
               }
               c = Connect(url.cluster.empty() ? where : url.cluster, 30000);
             }
             Result<SluiceDataset> r = Status(Code::kInternal, "unset");
             {
               py::gil_scoped_release nogil;
               r = OpenSluiceDataset(c, path, format, o);
             }
             SluiceDataset sd = Unwrap(std::move(r));
             return PyDataset{sd.dataset, sd.reader_factory, true};
#else
             throw py::value_error("'" + path + "': this sluice module was built without libsluice "
                                   "(sluice:// data sets need it)");
#endif
           }),
           py::arg("path"), py::arg("format") = "auto", py::arg("skip_corrupt") = false,
           py::arg("tar_data_ext") = "", py::arg("cluster") = py::none(), py::arg("client") = py::none())
      .def("__len__", [](const PyDataset& d) { return d.ds->size(); })
      .def_property_readonly("kind", [](const PyDataset& d) { return std::string(d.ds->kind()); })
      .def_property_readonly("skipped", [](const PyDataset& d) { return d.ds->skipped(); })
      .def_property_readonly("native", [](const PyDataset& d) { return d.native; },
                             "True when samples are read from Sluice through libsluice (no FUSE)")
      .def_property_readonly("files", [](const PyDataset& d) { return d.ds->files(); })
      .def("label", [](const PyDataset& d, uint64_t i) {
        if (i >= d.ds->size()) throw py::index_error("sample index out of range");
        return d.ds->Label(i);
      })
      .def("describe", [](const PyDataset& d, uint64_t i) {
        if (i >= d.ds->size()) throw py::index_error("sample index out of range");
        return d.ds->Describe(i);
      });

  py::class_<Batch, std::shared_ptr<Batch>>(m, "Batch")
      .def_readonly("epoch", &Batch::epoch)
      .def_readonly("step", &Batch::step)
      .def_readonly("skipped", &Batch::skipped)
      .def("__len__", [](const Batch& b) { return b.samples.size(); })
      .def_property_readonly(
          "buffer",
          [](py::object self) {
            const Batch& b = self.cast<const Batch&>();
            // A uint8 view of the whole batch buffer; `self` is the array's base.
            return py::array_t<uint8_t>({static_cast<py::ssize_t>(b.data_size())}, {1},
                                        b.data(), self);
          },
          "uint8 array over the batch's bytes (no copy); sample i is "
          "buffer[offsets[i]:offsets[i]+lengths[i]]")
      .def_property_readonly("offsets", [](const Batch& b) {
        return Column<int64_t>(b, [](const BatchSample& s) { return static_cast<int64_t>(s.offset); });
      })
      .def_property_readonly("lengths", [](const Batch& b) {
        return Column<int64_t>(b, [](const BatchSample& s) { return static_cast<int64_t>(s.length); });
      })
      .def_property_readonly("indices", [](const Batch& b) {
        return Column<int64_t>(b, [](const BatchSample& s) { return static_cast<int64_t>(s.index); });
      })
      .def_property_readonly("labels", [](const Batch& b) {
        return Column<int64_t>(b, [](const BatchSample& s) { return s.label; });
      })
      .def_property_readonly("kinds", [](const Batch& b) {
        return Column<uint8_t>(b, [](const BatchSample& s) { return static_cast<uint8_t>(s.kind); });
      });

  py::class_<Loader>(m, "Loader")
      .def(py::init([](const PyDataset& ds, uint64_t batch_size, uint64_t global_batch, uint64_t rank,
                       uint64_t world, uint64_t seed, bool shuffle, const std::string& last_batch,
                       uint64_t block_size, uint64_t window_blocks, uint32_t depth,
                       uint32_t io_threads, uint32_t decode_threads, bool skip_corrupt) {
             LoaderOptions o;
             o.batch_size = batch_size;
             o.global_batch = global_batch;
             o.rank = rank;
             o.world = world;
             o.seed = seed;
             o.shuffle = shuffle;
             o.last_batch = Unwrap(ParseLastBatch(last_batch));
             o.block_size = block_size;
             o.window_blocks = window_blocks;
             o.depth = depth;
             o.io_threads = io_threads;
             o.decode_threads = decode_threads;
             o.skip_corrupt = skip_corrupt;
             o.reader_factory = ds.reader_factory;  // libsluice for sluice:// data sets, else io_uring
             Result<std::unique_ptr<Loader>> r = Status(Code::kInternal, "unset");
             {
               py::gil_scoped_release nogil;
               r = Loader::Create(ds.ds, o);
             }
             return Unwrap(std::move(r));
           }),
           py::arg("dataset"), py::arg("batch_size") = 32, py::arg("global_batch") = 0,
           py::arg("rank") = 0, py::arg("world") = 1, py::arg("seed") = 0, py::arg("shuffle") = true,
           py::arg("last_batch") = "drop", py::arg("block_size") = 0, py::arg("window_blocks") = 16,
           py::arg("depth") = 4, py::arg("io_threads") = 2, py::arg("decode_threads") = 1,
           py::arg("skip_corrupt") = false)
      .def(
          "next",
          [](Loader& l) -> py::object {
            Result<std::shared_ptr<Batch>> r = Status(Code::kInternal, "unset");
            {
              py::gil_scoped_release nogil;
              r = l.Next();
            }
            std::shared_ptr<Batch> b = Unwrap(std::move(r));
            if (!b) return py::none();
            return py::cast(b);
          },
          "The next batch of the current epoch, or None at its end (the next call starts the "
          "next epoch). Raises with the file and sample named on corrupt input.")
      .def_property_readonly("steps_per_epoch", &Loader::steps_per_epoch)
      .def_property_readonly("batch_size", &Loader::batch_size)
      .def_property_readonly("epoch", &Loader::epoch)
      .def("state_dict", [](const Loader& l) { return StateToDict(l.state()); })
      .def("load_state_dict",
           [](Loader& l, const py::dict& d) {
             OrderState s = StateFromDict(d);
             Status st;
             {
               py::gil_scoped_release nogil;
               st = l.LoadState(s);
             }
             if (!st.ok()) Throw(st);
           })
      .def("set_epoch",
           [](Loader& l, uint64_t e) {
             Status st;
             {
               py::gil_scoped_release nogil;
               st = l.SetEpoch(e);
             }
             if (!st.ok()) Throw(st);
           })
      .def("stats", [](const Loader& l) {
        LoaderStats s = l.stats();
        py::dict d;
        d["batches"] = s.batches;
        d["samples"] = s.samples;
        d["bytes_read"] = s.bytes_read;
        d["skipped"] = s.skipped;
        d["wait_seconds"] = static_cast<double>(s.wait_nanos) / 1e9;
        return d;
      });

#ifdef SLUICE_PY_NATIVE
  m.attr("HAS_NATIVE") = true;
  py::class_<PyClient>(m, "Client",
                       "A libsluice connection. cluster: a cluster.toml path or host:port of sluice-mgmtd; "
                       "None: the local cluster ($SLUICE_HOME/local/cluster.toml). Create it after fork(), "
                       "not before (it runs threads).")
      .def(py::init([](py::object cluster, uint32_t deadline_ms) {
             std::string where = cluster.is_none() ? std::string() : cluster.cast<std::string>();
             return PyClient{Connect(where, deadline_ms), where};
           }),
           py::arg("cluster") = py::none(), py::arg("deadline_ms") = 30000)
      .def_property_readonly("cluster", [](const PyClient& c) { return c.cluster; })
      .def(
          "stat",
          [](PyClient& c, const std::string& path) {
            SluiceUrl u = Unwrap(ParseSluiceUrl(path));
            Result<client::InodeAttr> r = Status(Code::kInternal, "unset");
            {
              py::gil_scoped_release nogil;
              r = c.c->Stat(u.path);
            }
            client::InodeAttr a = UnwrapOs(std::move(r));
            py::dict d;
            d["ino"] = a.ino();
            d["size"] = a.size();
            d["is_dir"] = a.type() == meta::FILE_TYPE_DIRECTORY;
            d["is_file"] = a.type() == meta::FILE_TYPE_REGULAR;
            d["mode"] = a.mode();
            return d;
          },
          py::arg("path"), "dict(ino, size, is_dir, is_file, mode); OSError when missing")
      .def(
          "listdir",
          [](PyClient& c, const std::string& path) {
            SluiceUrl u = Unwrap(ParseSluiceUrl(path));
            Result<std::vector<client::DirEntry>> r = Status(Code::kInternal, "unset");
            {
              py::gil_scoped_release nogil;
              r = c.c->ListDir(u.path);
            }
            std::vector<std::string> names;
            for (const auto& e : UnwrapOs(std::move(r))) names.push_back(e.name());
            std::sort(names.begin(), names.end());
            return names;
          },
          py::arg("path"), "sorted names in the folder")
      .def(
          "mkdir",
          [](PyClient& c, const std::string& path, bool parents, bool exist_ok) {
            SluiceUrl u = Unwrap(ParseSluiceUrl(path));
            Status st;
            {
              py::gil_scoped_release nogil;
              std::vector<std::string> todo;
              if (parents) {
                for (size_t p = 1; (p = u.path.find('/', p)) != std::string::npos; p++) {
                  todo.push_back(u.path.substr(0, p));
                }
              }
              todo.push_back(u.path);
              for (size_t i = 0; i < todo.size() && st.ok(); i++) {
                auto m = c.c->Mkdir(todo[i], 0755);
                bool last = i + 1 == todo.size();
                if (!m.ok() && !(m.status().code() == Code::kExists && (!last || exist_ok))) st = m.status();
              }
            }
            if (!st.ok()) ThrowOs(st);
          },
          py::arg("path"), py::arg("parents") = false, py::arg("exist_ok") = false)
      .def(
          "put",
          [](PyClient& c, const std::string& local, const std::string& path, unsigned threads) {
            Result<uint64_t> r = Status(Code::kInternal, "unset");
            {
              py::gil_scoped_release nogil;
              r = CopyIntoSluice(*c.c, local, path, threads);
            }
            return UnwrapOs(std::move(r));
          },
          py::arg("local"), py::arg("path"), py::arg("threads") = 4,
          "Copies a local file or folder tree to path in Sluice (its parent must exist); returns bytes copied")
      .def(
          "read",
          [](PyClient& c, const std::string& path, uint64_t offset, int64_t length) {
            SluiceUrl u = Unwrap(ParseSluiceUrl(path));
            std::string out;
            Status st;
            {
              py::gil_scoped_release nogil;
              auto f = c.c->Open(u.path, O_RDONLY);
              if (!f.ok()) {
                st = f.status();
              } else {
                uint64_t size = (*f)->Size();
                uint64_t n = offset >= size ? 0 : size - offset;
                if (length >= 0) n = std::min<uint64_t>(n, static_cast<uint64_t>(length));
                out.resize(n);
                auto r = (*f)->Pread(out.data(), n, offset);
                if (!r.ok()) st = r.status();
                else out.resize(*r);
              }
            }
            if (!st.ok()) ThrowOs(st);
            return py::bytes(out);
          },
          py::arg("path"), py::arg("offset") = 0, py::arg("length") = -1)
      .def(
          "write",
          [](PyClient& c, const std::string& path, py::bytes data) {
            SluiceUrl u = Unwrap(ParseSluiceUrl(path));
            std::string bytes = data;
            Status st;
            {
              py::gil_scoped_release nogil;
              auto f = c.c->Open(u.path, O_CREAT | O_WRONLY | O_TRUNC, 0644);
              if (!f.ok()) {
                st = f.status();
              } else {
                auto w = (*f)->Pwrite(bytes.data(), bytes.size(), 0);
                st = w.ok() ? (*f)->Close() : w.status();
              }
            }
            if (!st.ok()) ThrowOs(st);
          },
          py::arg("path"), py::arg("data"), "Creates or replaces a file with data")
      .def(
          "remove",
          [](PyClient& c, const std::string& path) {
            SluiceUrl u = Unwrap(ParseSluiceUrl(path));
            Status st;
            {
              py::gil_scoped_release nogil;
              st = c.c->Unlink(u.path);
            }
            if (!st.ok()) ThrowOs(st);
          },
          py::arg("path"))
      .def("stats", [](const PyClient& c) {
        const client::ClientStats& s = c.c->stats();
        py::dict d;
        d["bytes_read"] = s.bytes_read.load();
        d["bytes_written"] = s.bytes_written.load();
        d["chunk_reads"] = s.chunk_reads.load();
        d["chunk_writes"] = s.chunk_writes.load();
        d["retries"] = s.retries.load();
        return d;
      });
#else
  m.attr("HAS_NATIVE") = false;
#endif
}
