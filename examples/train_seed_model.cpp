// train_seed_model.cpp: the seed model of the Keras dropout study, written against the installed
// libdropnet (find_package(dropnet) or pkg-config), trained briefly on CIFAR-10 and evaluated.
//
//   train_seed_model [DATA] [EPOCHS]   DATA: a CIFAR-10 directory or cifar-10-binary.tar.gz
//                                      (default data/cifar10-sample, the 500/200-image sample); EPOCHS: 2
//
// The Keras script it mirrors, line for line:
//   model = Sequential([Input((32, 32, 3)),
//       Conv2D(64, (3, 3), activation="relu", kernel_initializer="he_uniform", kernel_constraint=MaxNorm(2)),
//       MaxPooling2D((2, 2)), Dropout(0.5),
//       Conv2D(64, (3, 3), activation="relu", kernel_initializer="he_uniform", kernel_constraint=MaxNorm(2)),
//       MaxPooling2D((2, 2)), Dropout(0.5), Flatten(),
//       Dense(256, activation="relu", kernel_initializer="he_uniform", kernel_constraint=MaxNorm(2)),
//       Dense(10, activation="softmax")])
//   model.compile(optimizer=Adam(), loss="categorical_crossentropy", metrics=["accuracy"])
//   model.fit(x_train, y_train, batch_size=50, epochs=2)
//   loss, acc = model.evaluate(x_test, y_test)
#include <cstdio>
#include <exception>
#include <string>

#include <dropnet/dropnet.hpp>

int main(int argc, char** argv) try {
  namespace dn = dropnet;
  const std::string data = argc > 1 ? argv[1] : "data/cifar10-sample";
  const int epochs = argc > 2 ? std::stoi(argv[2]) : 2;
  const dn::cifar10::Dataset cifar = dn::cifar10::load(data);  // images (N, 32, 32, 3) in [0, 1], one-hot labels

  const dn::Conv2DOptions conv{.activation = "relu", .kernel_initializer = "he_uniform", .kernel_constraint = dn::MaxNorm{2}};
  dn::Sequential model({32, 32, 3});
  model.add(dn::Conv2D(64, {3, 3}, conv));
  model.add(dn::MaxPooling2D({.pool_size = {2, 2}}));
  model.add(dn::Dropout(0.5));
  model.add(dn::Conv2D(64, {3, 3}, conv));
  model.add(dn::MaxPooling2D({.pool_size = {2, 2}}));
  model.add(dn::Dropout(0.5));
  model.add(dn::Flatten());
  model.add(dn::Dense(256, {.activation = "relu", .kernel_initializer = "he_uniform", .kernel_constraint = dn::MaxNorm{2}}));
  model.add(dn::Dense(10, {.activation = "softmax"}));
  model.compile({.optimizer = dn::Adam{}, .loss = "categorical_crossentropy",
                 .seed = 1});  // categorical cross-entropy, accuracy; CUDA when available

  std::printf("dropnet %s on %s, %lld training and %lld test images from %s\n", DROPNET_VERSION_STRING,
              std::string(dn::to_string(model.device())).c_str(), static_cast<long long>(cifar.train.size()),
              static_cast<long long>(cifar.test.size()), cifar.source.c_str());
  std::fputs(model.summary().c_str(), stdout);
  model.fit(cifar.train.images, cifar.train.labels, {.batch_size = 50, .epochs = epochs, .verbose = 2});
  const dn::Evaluation test = model.evaluate(cifar.test.images, cifar.test.labels, /*batch_size=*/50, /*verbose=*/0);
  std::printf("test loss: %.4f\ntest accuracy: %.4f\n", test.loss, test.accuracy);
  return 0;
} catch (const dropnet::Error& e) {  // InvalidArgument, IoError, DataError, DeviceError: says what was wrong
  std::fprintf(stderr, "train_seed_model: error: %s\n", e.what());
  return 1;
} catch (const std::exception& e) {  // a bad EPOCHS (std::stoi), out of memory
  std::fprintf(stderr, "train_seed_model: %s\n", e.what());
  return 2;
}
