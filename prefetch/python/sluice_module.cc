// pybind11 binding `sluice._sluice`: Dataset, Loader and Batch. Batches are
// exposed as numpy arrays over the C++ buffer (no copy; the array keeps the
// batch alive). Every call that waits or reads runs with the GIL released.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "prefetch/dataset.h"
#include "prefetch/loader.h"

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

struct PyDataset {
  std::shared_ptr<const Dataset> ds;
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
                       const std::string& tar_data_ext) {
             DatasetOptions o;
             o.skip_corrupt = skip_corrupt;
             o.tar_data_ext = tar_data_ext;
             Result<std::unique_ptr<Dataset>> r = Status(Code::kInternal, "unset");
             {
               py::gil_scoped_release nogil;
               r = OpenDataset(path, format, o);
             }
             return PyDataset{std::shared_ptr<const Dataset>(Unwrap(std::move(r)))};
           }),
           py::arg("path"), py::arg("format") = "auto", py::arg("skip_corrupt") = false,
           py::arg("tar_data_ext") = "")
      .def("__len__", [](const PyDataset& d) { return d.ds->size(); })
      .def_property_readonly("kind", [](const PyDataset& d) { return std::string(d.ds->kind()); })
      .def_property_readonly("skipped", [](const PyDataset& d) { return d.ds->skipped(); })
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
}
