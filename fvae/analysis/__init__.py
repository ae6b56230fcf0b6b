"""Analysis of a trained model's outputs, as arrays in and numbers or pictures out: fvae's
Fashion-MNIST classifier (`classifier`), the sample-quality scores in its features
(`sample_scores`), linear and k-NN probes of the codes (`probes`) and the pictures (`plots`)."""
