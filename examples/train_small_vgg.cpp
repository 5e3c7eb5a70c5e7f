// train_small_vgg.cpp: a second architecture against the installed libdropnet: a small VGG-style convnet
// with BatchNormalization after every convolution, dropout between the blocks and GlobalAveragePooling2D
// instead of Flatten + a large Dense layer, trained on CIFAR-10's integer labels (sparse categorical
// cross-entropy), then evaluated and asked for Monte Carlo dropout predictions.
//
//   train_small_vgg [DATA] [EPOCHS]    DATA: a CIFAR-10 directory or cifar-10-binary.tar.gz
//                                      (default data/cifar10-sample); EPOCHS: 2
//
// The Keras script it mirrors:
//   def block(filters, rate):
//       return [Conv2D(filters, 3, padding="same", use_bias=False), BatchNormalization(), Activation("relu"),
//               Conv2D(filters, 3, padding="same", use_bias=False), BatchNormalization(), Activation("relu"),
//               MaxPooling2D(), Dropout(rate)]
//   model = Sequential([Input((32, 32, 3)), *block(32, 0.2), *block(64, 0.3),
//                       GlobalAveragePooling2D(), Dropout(0.4), Dense(10, activation="softmax")])
//   model.compile(optimizer=Adam(), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
//   model.fit(x_train, y_train, batch_size=50, epochs=2)      # y: integer class indices
//   loss, acc = model.evaluate(x_test, y_test)
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include <dropnet/dropnet.hpp>

namespace dn = dropnet;

namespace {

// Two 3x3 convolutions, each followed by BatchNormalization (which makes a bias redundant) and ReLU, then
// 2x2 max pooling and dropout: the VGG block with batch normalization.
void add_block(dn::Sequential& model, std::int64_t filters, double rate) {
  for (int i = 0; i < 2; ++i) {
    model.add(dn::Conv2D(filters, {3, 3}, {.padding = "same", .use_bias = false, .kernel_initializer = "he_uniform"}));
    model.add(dn::BatchNormalization());
    model.add(dn::Activation("relu"));
  }
  model.add(dn::MaxPooling2D({.pool_size = {2, 2}}));
  model.add(dn::Dropout(rate));
}

}  // namespace

int main(int argc, char** argv) try {
  const std::string data = argc > 1 ? argv[1] : "data/cifar10-sample";
  const int epochs = argc > 2 ? std::stoi(argv[2]) : 2;
  // Labels as (N) class indices, CIFAR-10's own format: no one-hot encoding needed.
  const dn::cifar10::Dataset cifar = dn::cifar10::load(data, {.sparse_labels = true});

  dn::Sequential model({32, 32, 3}, "small_vgg");
  add_block(model, 32, 0.2);
  add_block(model, 64, 0.3);
  model.add(dn::GlobalAveragePooling2D());
  model.add(dn::Dropout(0.4));
  model.add(dn::Dense(10, {.activation = "softmax"}));
  // "accuracy" resolves to sparse_categorical_accuracy with this loss, as in Keras.
  model.compile({.loss = "sparse_categorical_crossentropy", .seed = 1});  // CUDA when available

  std::printf("dropnet %s on %s, %lld training and %lld test images from %s\n", DROPNET_VERSION_STRING,
              std::string(dn::to_string(model.device())).c_str(), static_cast<long long>(cifar.train.size()),
              static_cast<long long>(cifar.test.size()), cifar.source.c_str());
  std::fputs(model.summary().c_str(), stdout);
  model.fit(cifar.train.images, cifar.train.labels, {.batch_size = 50, .epochs = epochs, .verbose = 2});
  const dn::Evaluation test = model.evaluate(cifar.test.images, cifar.test.labels, /*batch_size=*/50, /*verbose=*/0);
  std::printf("test loss: %.4f\ntest accuracy: %.4f\n", test.loss, test.accuracy);

  // Monte Carlo dropout: 10 passes with the dropout layers active (BatchNormalization keeps its moving
  // statistics), averaged; its accuracy beside the single deterministic pass's.
  const std::int64_t n = cifar.test.size();
  std::vector<float> mean(static_cast<std::size_t>(n * 10), 0.0f);
  constexpr int kPasses = 10;
  for (int t = 0; t < kPasses; ++t) {
    const std::vector<float> p = model.predict(cifar.test.images, {.batch_size = 50, .dropout = true}).to_vector();
    for (std::size_t i = 0; i < mean.size(); ++i) mean[i] += p[i] / kPasses;
  }
  std::int64_t correct = 0;
  for (std::int64_t r = 0; r < n; ++r) {
    int best = 0;
    for (int k = 1; k < 10; ++k)
      if (mean[static_cast<std::size_t>(r * 10 + k)] > mean[static_cast<std::size_t>(r * 10 + best)]) best = k;
    correct += best == cifar.test.classes[static_cast<std::size_t>(r)];
  }
  std::printf("Monte Carlo dropout accuracy (%d passes): %.4f\n", kPasses, double(correct) / double(n));
  return 0;
} catch (const dropnet::Error& e) {  // InvalidArgument, IoError, DataError, DeviceError: says what was wrong
  std::fprintf(stderr, "train_small_vgg: error: %s\n", e.what());
  return 1;
} catch (const std::exception& e) {  // a bad EPOCHS (std::stoi), out of memory
  std::fprintf(stderr, "train_small_vgg: %s\n", e.what());
  return 2;
}
